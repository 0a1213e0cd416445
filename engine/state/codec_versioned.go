package state

import (
	"fmt"
	"slices"
	"strings"
)

// Version is one encoding of T in a Versioned codec.
type Version[T any] struct {
	// V is the version byte written before the encoding.
	V uint8
	// Codec encodes and decodes this version. Only the current version's
	// Append is used; older versions only decode (and may migrate: their
	// Decode returns today's T from yesterday's bytes).
	Codec Codec[T]
}

// Versioned returns a codec that writes a version byte, then the current
// version's encoding, and decodes any listed version by its own codec. State
// written by an older job stays readable after the encoding changes; state
// written by a newer job (an unknown version) is a clear error, never a
// misread.
//
// Changing a state's encoding: keep the old Version in the list (its Decode
// may convert to the new T) and add the new one as current.
func Versioned[T any](current uint8, versions ...Version[T]) (Codec[T], error) {
	c := versionedCodec[T]{current: current, byVersion: map[uint8]Codec[T]{}}
	for _, v := range versions {
		if v.Codec == nil {
			return nil, fmt.Errorf("versioned codec: version %d has no codec", v.V)
		}
		if _, dup := c.byVersion[v.V]; dup {
			return nil, fmt.Errorf("versioned codec: version %d listed twice", v.V)
		}
		c.byVersion[v.V] = v.Codec
		c.known = append(c.known, v.V)
	}
	slices.Sort(c.known)
	cur, ok := c.byVersion[current]
	if !ok {
		return nil, fmt.Errorf("versioned codec: current version %d is not among the versions %v", current, c.known)
	}
	c.cur = cur
	return c, nil
}

// MustVersioned is Versioned for package-level codec variables, whose
// arguments are constants: it panics on a programming error.
func MustVersioned[T any](current uint8, versions ...Version[T]) Codec[T] {
	c, err := Versioned(current, versions...)
	if err != nil {
		panic(err)
	}
	return c
}

type versionedCodec[T any] struct {
	current   uint8
	cur       Codec[T]
	byVersion map[uint8]Codec[T]
	known     []uint8
}

func (c versionedCodec[T]) Append(dst []byte, v T) []byte {
	return c.cur.Append(append(dst, c.current), v)
}

func (c versionedCodec[T]) Decode(b []byte) (T, error) {
	var zero T
	if len(b) == 0 {
		return zero, fmt.Errorf("versioned codec: empty value (no version byte)")
	}
	codec, ok := c.byVersion[b[0]]
	if !ok {
		return zero, fmt.Errorf("versioned codec: unknown version %d (this job knows %s; was the state written by a newer version of the job?)", b[0], c.knownString())
	}
	v, err := codec.Decode(b[1:])
	if err != nil {
		return zero, fmt.Errorf("versioned codec: version %d: %w", b[0], err)
	}
	return v, nil
}

func (c versionedCodec[T]) knownString() string {
	s := make([]string, len(c.known))
	for i, v := range c.known {
		s[i] = fmt.Sprint(v)
	}
	return strings.Join(s, ", ")
}
