package engine

import (
	"context"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/onceflow/onceflow/checkpoint"
)

// downloader reads state objects and verifies them against their handles, so
// a damaged checkpoint is named instead of half-restored.
//
// Objects are streamed, not buffered: a Pebble base holds files of tens of
// megabytes, and a restore fetches many at once. The check therefore comes
// at the end: the Read that reaches the end of a damaged object returns an
// error instead of io.EOF. Backends read to the end before they trust an
// object (pebblestate renames a download into place only then; the memory
// backend decodes only what io.ReadAll returned without error).
type downloader struct{ a *attempt }

func (d *downloader) Open(ctx context.Context, h checkpoint.Handle) (io.ReadCloser, error) {
	rc, err := d.a.cfg.Store.Get(ctx, h.Name)
	if err != nil {
		return nil, fmt.Errorf("read state object %s: %w", h.Name, err)
	}
	return &verifyingReader{rc: rc, h: h}, nil
}

// verifyingReader passes an object through, counting and checksumming it,
// and fails the read that ends it if it does not match its handle.
type verifyingReader struct {
	rc  io.ReadCloser
	h   checkpoint.Handle
	n   int64
	crc uint32
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.rc.Read(p)
	v.n += int64(n)
	v.crc = crc32.Update(v.crc, castagnoli, p[:n])
	switch {
	case v.n > v.h.Size:
		return n, fmt.Errorf("state object %s: more than the %d bytes the manifest says (replaced?)", v.h.Name, v.h.Size)
	case err == io.EOF && v.n != v.h.Size:
		return n, fmt.Errorf("state object %s: %d bytes, the manifest says %d (truncated or replaced)", v.h.Name, v.n, v.h.Size)
	case err == io.EOF && v.crc != v.h.CRC32C:
		return n, fmt.Errorf("state object %s: checksum %08x, the manifest says %08x (corrupt)", v.h.Name, v.crc, v.h.CRC32C)
	case err != nil && err != io.EOF:
		return n, fmt.Errorf("read state object %s: %w", v.h.Name, err)
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.rc.Close() }
