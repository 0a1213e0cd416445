package state

import (
	"encoding/json"
	"fmt"
)

// JSON returns a codec that stores T as its encoding/json form. It suits
// structs whose fields evolve (encoding/json ignores unknown fields and leaves
// missing ones zero), at a cost in size and speed over a hand-written codec.
// Wrap it in Versioned when a change cannot be expressed that way.
//
// Codec.Append cannot return an error, so a value encoding/json refuses (a
// NaN float, a channel) is stored as a marker that Decode reports as an
// error naming the original failure: the mistake surfaces on the next read
// of that key instead of silently storing something else.
func JSON[T any]() Codec[T] { return jsonCodec[T]{} }

type jsonCodec[T any] struct{}

// jsonUnencodable starts the marker of a value that could not be encoded. No
// JSON text starts with a NUL byte, so the marker cannot be a real value.
const jsonUnencodable = 0x00

func (jsonCodec[T]) Append(dst []byte, v T) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		dst = append(dst, jsonUnencodable)
		return append(dst, err.Error()...)
	}
	return append(dst, b...)
}

func (jsonCodec[T]) Decode(b []byte) (T, error) {
	var v T
	if len(b) > 0 && b[0] == jsonUnencodable {
		return v, fmt.Errorf("json codec: the value could not be encoded when it was stored: %s", b[1:])
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("json codec: %w", err)
	}
	return v, nil
}
