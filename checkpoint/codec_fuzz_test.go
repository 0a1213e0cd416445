package checkpoint

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

// FuzzDecodeManifest checks that decoding never panics, that every failure is
// ErrCorrupt, and that whatever decodes re-encodes to the identical bytes
// (so decoding loses nothing and accepts no alternative spelling of a
// manifest).
//
// A random mutation almost always breaks the checksum, which would keep the
// fuzzer at the door. So each input is also tried with its checksum
// recomputed (cdcReseal): that is how mutations reach the body parser and
// Validate.
//
//	go test -run '^$' -fuzz FuzzDecodeManifest -fuzztime 60s ./checkpoint
func FuzzDecodeManifest(f *testing.F) {
	f.Add(cdcMustEncode(f, cdcRichManifest()))
	f.Add(cdcMustEncode(f, cdcMinimalManifest()))
	r := rand.New(rand.NewPCG(3, 4))
	for range 8 {
		f.Add(cdcMustEncode(f, cdcRandomManifest(r)))
	}
	f.Add([]byte{})
	f.Add([]byte(manifestMagic))

	f.Fuzz(func(t *testing.T, data []byte) {
		for _, in := range [][]byte{data, cdcReseal(data)} {
			m, err := DecodeManifest(in)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("decode error does not wrap ErrCorrupt: %v", err)
				}
				continue
			}
			out, err := EncodeManifest(m)
			if err != nil {
				t.Fatalf("decoded manifest does not re-encode: %v", err)
			}
			if !bytes.Equal(in, out) {
				t.Fatalf("re-encoding differs:\n in %x\nout %x", in, out)
			}
		}
	})
}
