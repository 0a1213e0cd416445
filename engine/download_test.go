package engine

import (
	"context"
	"hash/crc32"
	"io"
	"strings"
	"testing"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/checkpoint/memstore"
)

// TestDownloaderVerifies streams objects through the downloader: an intact
// one reads to io.EOF; a truncated, extended or corrupted one fails the read
// that ends it, naming the object and what differs.
func TestDownloaderVerifies(t *testing.T) {
	ctx := context.Background()
	store := memstore.New()
	d := &downloader{a: &attempt{cfg: Config{Store: store}}}
	want := []byte(strings.Repeat("state bytes ", 10_000))
	for _, c := range []struct {
		name   string
		stored []byte
		err    string // "" = reads intact
	}{
		{"intact", want, ""},
		{"truncated", want[:len(want)-1], "bytes, the manifest says"},
		{"extended", append(append([]byte(nil), want...), 'x'), "more than the"},
		{"corrupted", append([]byte("X"), want[1:]...), "(corrupt)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := checkpoint.Handle{Name: "job/data/1/op/" + c.name, Size: int64(len(want)), CRC32C: crc32.Checksum(want, castagnoli)}
			if err := checkpoint.PutBytes(ctx, store, h.Name, c.stored); err != nil {
				t.Fatal(err)
			}
			rc, err := d.Open(ctx, h)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if c.err == "" {
				if err != nil || string(got) != string(want) {
					t.Fatalf("intact object: %d bytes, err %v", len(got), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), h.Name) {
				t.Fatalf("err = %v, want one naming %s and containing %q", err, h.Name, c.err)
			}
		})
	}
	if _, err := d.Open(ctx, checkpoint.Handle{Name: "job/data/1/op/missing"}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing object: err = %v", err)
	}
}
