package state

import (
	"encoding/binary"
	"fmt"
)

// Value is a single value per key.
type Value[V any] struct {
	b     Backend
	id    ID
	name  string
	codec Codec[V]
	buf   []byte
}

// NewValue registers (or finds) the value state name in b.
func NewValue[V any](b Backend, name string, codec Codec[V]) (*Value[V], error) {
	id, err := b.Register(name, KindValue)
	if err != nil {
		return nil, err
	}
	return &Value[V]{b: b, id: id, name: name, codec: codec}, nil
}

// Get returns the value for the current key and whether it was set.
func (s *Value[V]) Get() (V, bool, error) {
	var zero V
	raw, ok, err := s.b.Get(s.id, nil)
	if err != nil || !ok {
		return zero, false, err
	}
	v, err := s.codec.Decode(raw)
	if err != nil {
		return zero, false, fmt.Errorf("value state %q: decode: %w", s.name, err)
	}
	return v, true, nil
}

// Set stores v for the current key.
func (s *Value[V]) Set(v V) error {
	s.buf = s.codec.Append(s.buf[:0], v)
	return s.b.Put(s.id, nil, s.buf)
}

// Clear removes the value of the current key.
func (s *Value[V]) Clear() error { return s.b.Delete(s.id, nil) }

// Reducing keeps one value per key folded with a reduce function.
type Reducing[V any] struct {
	v      *Value[V]
	reduce func(acc, in V) V
}

// NewReducing registers a reducing state: Add folds the input into the value.
func NewReducing[V any](b Backend, name string, codec Codec[V], reduce func(acc, in V) V) (*Reducing[V], error) {
	v, err := NewValue(b, name, codec)
	if err != nil {
		return nil, err
	}
	return &Reducing[V]{v: v, reduce: reduce}, nil
}

// Add folds in into the current key's value and returns the new value.
func (s *Reducing[V]) Add(in V) (V, error) {
	acc, ok, err := s.v.Get()
	if err != nil {
		return acc, err
	}
	if ok {
		in = s.reduce(acc, in)
	}
	return in, s.v.Set(in)
}

// Get returns the current key's value.
func (s *Reducing[V]) Get() (V, bool, error) { return s.v.Get() }

// Clear removes the current key's value.
func (s *Reducing[V]) Clear() error { return s.v.Clear() }

// Map is a map per key.
type Map[K, V any] struct {
	b      Backend
	id     ID
	name   string
	keys   Codec[K]
	values Codec[V]
	kbuf   []byte
	vbuf   []byte
}

// NewMap registers (or finds) the map state name in b.
func NewMap[K, V any](b Backend, name string, keys Codec[K], values Codec[V]) (*Map[K, V], error) {
	id, err := b.Register(name, KindMap)
	if err != nil {
		return nil, err
	}
	return &Map[K, V]{b: b, id: id, name: name, keys: keys, values: values}, nil
}

// Get returns the value of k in the current key's map.
func (s *Map[K, V]) Get(k K) (V, bool, error) {
	var zero V
	s.kbuf = s.keys.Append(s.kbuf[:0], k)
	raw, ok, err := s.b.Get(s.id, s.kbuf)
	if err != nil || !ok {
		return zero, false, err
	}
	v, err := s.values.Decode(raw)
	if err != nil {
		return zero, false, fmt.Errorf("map state %q: decode value: %w", s.name, err)
	}
	return v, true, nil
}

// Put sets k to v in the current key's map.
func (s *Map[K, V]) Put(k K, v V) error {
	s.kbuf = s.keys.Append(s.kbuf[:0], k)
	s.vbuf = s.values.Append(s.vbuf[:0], v)
	return s.b.Put(s.id, s.kbuf, s.vbuf)
}

// Delete removes k from the current key's map.
func (s *Map[K, V]) Delete(k K) error {
	s.kbuf = s.keys.Append(s.kbuf[:0], k)
	return s.b.Delete(s.id, s.kbuf)
}

// All calls fn for every entry of the current key's map, in encoded key order.
func (s *Map[K, V]) All(fn func(K, V) error) error {
	return s.b.Scan(s.id, func(rk, rv []byte) error {
		k, err := s.keys.Decode(rk)
		if err != nil {
			return fmt.Errorf("map state %q: decode key: %w", s.name, err)
		}
		v, err := s.values.Decode(rv)
		if err != nil {
			return fmt.Errorf("map state %q: decode value: %w", s.name, err)
		}
		return fn(k, v)
	})
}

// List is an append-mostly list per key, stored as one length-prefixed
// sequence of encoded elements.
type List[V any] struct {
	b     Backend
	id    ID
	name  string
	codec Codec[V]
	buf   []byte
}

// NewList registers (or finds) the list state name in b.
func NewList[V any](b Backend, name string, codec Codec[V]) (*List[V], error) {
	id, err := b.Register(name, KindList)
	if err != nil {
		return nil, err
	}
	return &List[V]{b: b, id: id, name: name, codec: codec}, nil
}

// Add appends v to the current key's list.
func (s *List[V]) Add(v V) error {
	raw, _, err := s.b.Get(s.id, nil)
	if err != nil {
		return err
	}
	s.buf = append(s.buf[:0], raw...)
	start := len(s.buf)
	s.buf = s.codec.Append(s.buf, v)
	elem := len(s.buf) - start
	// Prefix the element with its length: encode after, then rotate, to
	// avoid a second buffer.
	s.buf = binary.AppendUvarint(s.buf, uint64(elem))
	n := len(s.buf) - start - elem
	rotateRight(s.buf[start:], n)
	return s.b.Put(s.id, nil, s.buf)
}

// All calls fn for every element of the current key's list, in order.
func (s *List[V]) All(fn func(V) error) error {
	raw, ok, err := s.b.Get(s.id, nil)
	if err != nil || !ok {
		return err
	}
	for len(raw) > 0 {
		n, k := binary.Uvarint(raw)
		if k <= 0 || uint64(len(raw)-k) < n {
			return fmt.Errorf("list state %q: %w", s.name, errCorruptList)
		}
		v, err := s.codec.Decode(raw[k : k+int(n)])
		if err != nil {
			return fmt.Errorf("list state %q: decode: %w", s.name, err)
		}
		raw = raw[k+int(n):]
		if err := fn(v); err != nil {
			return err
		}
	}
	return nil
}

// Clear empties the current key's list.
func (s *List[V]) Clear() error { return s.b.Delete(s.id, nil) }

// rotateRight moves the last n bytes of b to its front.
func rotateRight(b []byte, n int) {
	reverse(b)
	reverse(b[:n])
	reverse(b[n:])
}

func reverse(b []byte) {
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
}
