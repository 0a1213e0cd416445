package state

import (
	"reflect"
	"testing"
)

// fuzzCodec checks that Decode never panics on arbitrary bytes and that what
// it accepts survives a round trip: decode(encode(decode(b))) == decode(b).
func fuzzCodec[T any](t *testing.T, c Codec[T], b []byte) {
	v, err := c.Decode(b)
	if err != nil {
		return
	}
	again, err := c.Decode(c.Append(nil, v))
	if err != nil {
		t.Fatalf("re-decoding the encoding of an accepted value failed: %v", err)
	}
	if !reflect.DeepEqual(v, again) {
		t.Fatalf("round trip changed the value: %#v -> %#v", v, again)
	}
}

var fuzzVersioned = MustVersioned(2,
	Version[int64]{V: 1, Codec: legacyStringInt{}},
	Version[int64]{V: 2, Codec: Int64},
)

// FuzzCodecDecode feeds the same bytes to every built-in codec's Decode.
func FuzzCodecDecode(f *testing.F) {
	for _, seed := range [][]byte{
		nil, {0}, {0x80}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		[]byte(`{"name":"a","count":1}`), []byte(`[1,2`), {1, '4', '2'}, {2, 0x54}, {9},
		{0x80, 0x00}, {0x00, 'e', 'r', 'r'},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzCodec(t, String, b)
		fuzzCodec(t, Bytes, b)
		fuzzCodec(t, Int64, b)
		fuzzCodec(t, Uint64, b)
		fuzzCodec(t, JSON[jsonThing](), b)
		fuzzCodec(t, JSON[map[string]int64](), b)
		fuzzCodec(t, fuzzVersioned, b)
	})
}
