package state

import (
	"bytes"
	"math"
	"reflect"
	"strings"
	"testing"
)

type jsonThing struct {
	Name  string   `json:"name"`
	Count int64    `json:"count"`
	Tags  []string `json:"tags,omitempty"`
}

func TestJSONCodecRoundTrip(t *testing.T) {
	c := JSON[jsonThing]()
	in := jsonThing{Name: "a", Count: 42, Tags: []string{"x"}}
	b := c.Append([]byte("prefix"), in)
	if !bytes.HasPrefix(b, []byte("prefix")) {
		t.Fatalf("Append did not append: %q", b)
	}
	out, err := c.Decode(b[len("prefix"):])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip: got %+v, want %+v", out, in)
	}
}

func TestJSONCodecUnencodableFailsOnRead(t *testing.T) {
	c := JSON[float64]()
	b := c.Append(nil, math.NaN())
	_, err := c.Decode(b)
	if err == nil || !strings.Contains(err.Error(), "could not be encoded") {
		t.Fatalf("decode of an unencodable value: err = %v, want one naming the encoding failure", err)
	}
}

func TestVersionedCodec(t *testing.T) {
	// Version 1 stored a count as a string; version 2 as a varint. The
	// version 1 codec migrates on decode.
	v1 := Version[int64]{V: 1, Codec: legacyStringInt{}}
	v2 := Version[int64]{V: 2, Codec: Int64}
	old := MustVersioned(1, v1)
	cur := MustVersioned(2, v1, v2)

	stored := old.Append(nil, 7)
	if got, err := cur.Decode(stored); err != nil || got != 7 {
		t.Fatalf("decode version 1 with the version 2 codec: %d, %v", got, err)
	}
	if got, err := cur.Decode(cur.Append(nil, -3)); err != nil || got != -3 {
		t.Fatalf("round trip version 2: %d, %v", got, err)
	}
	// State written by a newer job: a clear error, not a misread.
	_, err := old.Decode(cur.Append(nil, 5))
	if err == nil || !strings.Contains(err.Error(), "unknown version 2") || !strings.Contains(err.Error(), "knows 1") {
		t.Fatalf("unknown version: err = %v", err)
	}
	if _, err := cur.Decode(nil); err == nil {
		t.Fatal("empty value decoded without error")
	}
}

func TestVersionedCodecConfig(t *testing.T) {
	for name, f := range map[string]func() error{
		"missing current": func() error { _, err := Versioned(3, Version[int64]{V: 1, Codec: Int64}); return err },
		"duplicate": func() error {
			_, err := Versioned(1, Version[int64]{V: 1, Codec: Int64}, Version[int64]{V: 1, Codec: Int64})
			return err
		},
		"nil codec": func() error { _, err := Versioned(1, Version[int64]{V: 1}); return err },
	} {
		if f() == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

type legacyStringInt struct{}

func (legacyStringInt) Append(dst []byte, v int64) []byte {
	return append(dst, itoa64(v)...)
}

func (legacyStringInt) Decode(b []byte) (int64, error) {
	var v int64
	neg := false
	for i, c := range b {
		if i == 0 && c == '-' {
			neg = true
			continue
		}
		if c < '0' || c > '9' {
			return 0, errCorruptList
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, nil
}

func itoa64(v int64) string {
	if v < 0 {
		return "-" + itoa64(-v)
	}
	if v < 10 {
		return string(rune('0' + v))
	}
	return itoa64(v/10) + string(rune('0'+v%10))
}
