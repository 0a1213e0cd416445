package pebblestate

import (
	"reflect"
	"testing"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/engine/state"
)

func sampleMeta() *snapMeta {
	return &snapMeta{
		CheckpointID: 9, KeyGroups: checkpoint.KeyGroupRange{Start: 32, End: 64}, MaxParallelism: 128,
		States: []stateDecl{{Name: "n", Kind: state.KindValue}, {Name: "m", Kind: state.KindMap}},
		BaseID: 5,
		Base: []fileRef{
			{Name: "000005.sst", H: checkpoint.Handle{Name: "job/data/00000000000000000005/op/0-t-b-000005.sst", Size: 1234, CRC32C: 0xdeadbeef}},
			{Name: "MANIFEST-000007", H: checkpoint.Handle{Name: "job/data/00000000000000000005/op/0-t-b-MANIFEST-000007", Size: 77, CRC32C: 1}},
		},
		Segments: []segRef{{ID: 7, H: checkpoint.Handle{Name: "job/data/00000000000000000007/op/0-t-seg-7.log", Size: 10, CRC32C: 2}}},
	}
}

func TestMetaRoundTrip(t *testing.T) {
	m := sampleMeta()
	got, err := decodeMeta(m.encode())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, m)
	}
	data := m.encode()
	for i := range data {
		if _, err := decodeMeta(data[:i]); err == nil {
			t.Fatalf("truncated to %d of %d bytes: decoded without error", i, len(data))
		}
	}
}

// FuzzDecodeMeta: arbitrary bytes never panic the decoder, and whatever it
// accepts re-encodes to a description it decodes the same.
func FuzzDecodeMeta(f *testing.F) {
	f.Add(sampleMeta().encode())
	f.Add([]byte("OFPMETA1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeMeta(data)
		if err != nil {
			return
		}
		again, err := decodeMeta(m.encode())
		if err != nil {
			t.Fatalf("re-decoding an accepted description failed: %v", err)
		}
		if !reflect.DeepEqual(m, again) {
			t.Fatalf("round trip changed the description")
		}
	})
}
