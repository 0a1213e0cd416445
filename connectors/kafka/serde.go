package kafka

import (
	"time"
)

// Header is a record header.
type Header struct {
	Key   string
	Value []byte
}

// Message is one record read from Kafka with its key and value decoded.
type Message[K, V any] struct {
	Topic     string
	Partition int32
	Offset    int64
	// Timestamp is the record's timestamp, which the source also uses as
	// the record's event time.
	Timestamp time.Time
	Key       K
	Value     V
	Headers   []Header
}

// Deserializer decodes a record key or value read from topic. An error
// applies the source's BadRecordPolicy.
type Deserializer[T any] interface {
	Deserialize(topic string, data []byte) (T, error)
}

// DeserializerFunc adapts a function to Deserializer.
type DeserializerFunc[T any] func(topic string, data []byte) (T, error)

// Deserialize calls f.
func (f DeserializerFunc[T]) Deserialize(topic string, data []byte) (T, error) { return f(topic, data) }

// Serializer encodes (a part of) a record v written to topic.
type Serializer[T any] interface {
	Serialize(topic string, v T) ([]byte, error)
}

// SerializerFunc adapts a function to Serializer.
type SerializerFunc[T any] func(topic string, v T) ([]byte, error)

// Serialize calls f.
func (f SerializerFunc[T]) Serialize(topic string, v T) ([]byte, error) { return f(topic, v) }

// AppendSerializer is an optional capability of a Serializer: appending the
// encoding to dst lets the sink encode a whole batch into one buffer,
// instead of allocating per record (two allocations per output record, key
// and value, were a measurable share of a keyed job's CPU and garbage). The
// appended bytes must not depend on dst's previous content.
type AppendSerializer[T any] interface {
	AppendSerialize(dst []byte, topic string, v T) ([]byte, error)
}

// AppendSerializerFunc adapts an appending function to Serializer and
// AppendSerializer.
type AppendSerializerFunc[T any] func(dst []byte, topic string, v T) ([]byte, error)

// Serialize calls f with no buffer.
func (f AppendSerializerFunc[T]) Serialize(topic string, v T) ([]byte, error) {
	return f(nil, topic, v)
}

// AppendSerialize calls f.
func (f AppendSerializerFunc[T]) AppendSerialize(dst []byte, topic string, v T) ([]byte, error) {
	return f(dst, topic, v)
}

// Bytes passes bytes through unchanged in both directions. A null key or
// value deserializes to nil.
type Bytes struct{}

// Deserialize returns data itself: the client does not reuse record memory.
func (Bytes) Deserialize(_ string, data []byte) ([]byte, error) { return data, nil }

// Serialize returns v itself.
func (Bytes) Serialize(_ string, v []byte) ([]byte, error) { return v, nil }

// String converts between bytes and strings.
type String struct{}

// Deserialize returns data as a string.
func (String) Deserialize(_ string, data []byte) (string, error) { return string(data), nil }

// Serialize returns v's bytes.
func (String) Serialize(_ string, v string) ([]byte, error) { return []byte(v), nil }

// AppendSerialize appends v's bytes to dst.
func (String) AppendSerialize(dst []byte, _ string, v string) ([]byte, error) {
	return append(dst, v...), nil
}
