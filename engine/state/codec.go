package state

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Codec turns values into bytes and back. Every piece of state and every key
// has an explicit codec: the encoded form is what checkpoints hold, so it must
// stay readable across upgrades of the job.
type Codec[T any] interface {
	// Append appends the encoding of v to dst and returns the extended slice.
	Append(dst []byte, v T) []byte
	// Decode decodes b, which holds exactly one encoded value, and rejects
	// anything Append would not produce. It must not retain b.
	Decode(b []byte) (T, error)
}

// String encodes strings as their bytes.
var String Codec[string] = stringCodec{}

// Bytes encodes byte slices as themselves (Decode copies).
var Bytes Codec[[]byte] = bytesCodec{}

// Int64 encodes int64 as a zig-zag varint.
var Int64 Codec[int64] = int64Codec{}

// Uint64 encodes uint64 as a varint.
var Uint64 Codec[uint64] = uint64Codec{}

type stringCodec struct{}

func (stringCodec) Append(dst []byte, v string) []byte { return append(dst, v...) }
func (stringCodec) Decode(b []byte) (string, error)    { return string(b), nil }

type bytesCodec struct{}

func (bytesCodec) Append(dst []byte, v []byte) []byte { return append(dst, v...) }
func (bytesCodec) Decode(b []byte) ([]byte, error)    { return append([]byte(nil), b...), nil }

type int64Codec struct{}

func (int64Codec) Append(dst []byte, v int64) []byte { return binary.AppendVarint(dst, v) }
func (int64Codec) Decode(b []byte) (int64, error) {
	v, n := binary.Varint(b)
	var canon [binary.MaxVarintLen64]byte
	if n <= 0 || n != len(b) || binary.PutVarint(canon[:], v) != n {
		return 0, fmt.Errorf("int64 codec: malformed or non-canonical varint %x", b)
	}
	return v, nil
}

type uint64Codec struct{}

func (uint64Codec) Append(dst []byte, v uint64) []byte { return binary.AppendUvarint(dst, v) }
func (uint64Codec) Decode(b []byte) (uint64, error) {
	v, n := binary.Uvarint(b)
	var canon [binary.MaxVarintLen64]byte
	if n <= 0 || n != len(b) || binary.PutUvarint(canon[:], v) != n {
		return 0, fmt.Errorf("uint64 codec: malformed or non-canonical varint %x", b)
	}
	return v, nil
}

// errCorruptList is returned when a list state's bytes do not parse.
var errCorruptList = errors.New("list state: corrupt encoding")
