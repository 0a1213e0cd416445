// Package storetest is the conformance suite every checkpoint.Store must
// pass. A store's own test calls Run with a constructor that returns a fresh,
// empty store for each subtest, so that subtests cannot see each other's
// objects.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onceflow/onceflow/checkpoint"
)

// Run runs every conformance check against stores made by newStore.
func Run(t *testing.T, newStore func(t *testing.T) checkpoint.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s checkpoint.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"Overwrite", testOverwrite},
		{"GetMissing", testGetMissing},
		{"PutIfAbsent", testPutIfAbsent},
		{"PutIfAbsentRace", testPutIfAbsentRace},
		{"List", testList},
		{"Delete", testDelete},
		{"InvalidNames", testInvalidNames},
		{"Canceled", testCanceled},
		{"NoPartialReads", testNoPartialReads},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// body returns n deterministic bytes that differ per seed, so that a mix-up
// between two objects or two versions of one object is detected.
func body(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

func mustPut(t *testing.T, s checkpoint.Store, name string, data []byte) {
	t.Helper()
	if err := checkpoint.PutBytes(ctx(t), s, name, data); err != nil {
		t.Fatalf("Put %s: %v", name, err)
	}
}

func mustGet(t *testing.T, s checkpoint.Store, name string, want []byte) {
	t.Helper()
	got, err := checkpoint.GetBytes(ctx(t), s, name)
	if err != nil {
		t.Fatalf("Get %s: %v", name, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get %s: got %d bytes, want %d bytes (content differs)", name, len(got), len(want))
	}
}

// wantNotFound checks err is ErrNotFound and names both store and object, so
// that an operator reading the log knows where to look.
func wantNotFound(t *testing.T, s checkpoint.Store, name string, err error) {
	t.Helper()
	if !errors.Is(err, checkpoint.ErrNotFound) {
		t.Fatalf("Get %s: err = %v, want ErrNotFound", name, err)
	}
	wantNamed(t, s, name, err)
}

func wantNamed(t *testing.T, s checkpoint.Store, name string, err error) {
	t.Helper()
	if msg := err.Error(); !strings.Contains(msg, s.String()) || !strings.Contains(msg, name) {
		t.Fatalf("error %q does not name the store %q and the object %q", msg, s.String(), name)
	}
}

// onlyReader hides any WriterTo/Len/Seek methods so that the store sees a
// stream of unknown length, like a pipe from a snapshot uploader.
type onlyReader struct{ io.Reader }

func testRoundTrip(t *testing.T, s checkpoint.Store) {
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"small", []byte("hello")},
		{"nested/dir/obj-1.sst", body(1, 1000)},
		{"large", body(2, 9<<20+13)},
	} {
		mustPut(t, s, tc.name, tc.data)
		mustGet(t, s, tc.name, tc.data)
		unknown := tc.name + ".unknown-size"
		if err := s.Put(ctx(t), unknown, onlyReader{bytes.NewReader(tc.data)}, -1); err != nil {
			t.Fatalf("Put %s with size -1: %v", unknown, err)
		}
		mustGet(t, s, unknown, tc.data)
	}
}

func testOverwrite(t *testing.T, s checkpoint.Store) {
	mustPut(t, s, "obj", body(1, 5000))
	mustPut(t, s, "obj", []byte("short"))
	mustGet(t, s, "obj", []byte("short"))
}

func testGetMissing(t *testing.T, s checkpoint.Store) {
	_, err := s.Get(ctx(t), "missing/obj")
	wantNotFound(t, s, "missing/obj", err)
}

func testPutIfAbsent(t *testing.T, s checkpoint.Store) {
	first, second := []byte("manifest-1"), []byte("manifest-2")
	if err := s.PutIfAbsent(ctx(t), "job/chk-1/MANIFEST", first); err != nil {
		t.Fatalf("first PutIfAbsent: %v", err)
	}
	err := s.PutIfAbsent(ctx(t), "job/chk-1/MANIFEST", second)
	if !errors.Is(err, checkpoint.ErrExists) {
		t.Fatalf("second PutIfAbsent: err = %v, want ErrExists", err)
	}
	wantNamed(t, s, "job/chk-1/MANIFEST", err)
	mustGet(t, s, "job/chk-1/MANIFEST", first)

	// An object written by Put counts as present too.
	mustPut(t, s, "job/other", []byte("x"))
	if err := s.PutIfAbsent(ctx(t), "job/other", second); !errors.Is(err, checkpoint.ErrExists) {
		t.Fatalf("PutIfAbsent over Put object: err = %v, want ErrExists", err)
	}
	// After Delete the name is free again.
	if err := s.Delete(ctx(t), "job/other"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := s.PutIfAbsent(ctx(t), "job/other", second); err != nil {
		t.Fatalf("PutIfAbsent after Delete: %v", err)
	}
	mustGet(t, s, "job/other", second)
}

// testPutIfAbsentRace is the property the manifest protocol relies on: of
// several incarnations racing to complete checkpoint n, exactly one wins and
// the stored manifest is the winner's.
func testPutIfAbsentRace(t *testing.T, s checkpoint.Store) {
	const n = 8
	for round := range 3 {
		name := fmt.Sprintf("race/%d/MANIFEST", round)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				errs[i] = s.PutIfAbsent(ctx(t), name, body(byte(i), 64<<10))
			})
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("round %d: writers %d and %d both won", round, winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, checkpoint.ErrExists):
				t.Fatalf("round %d: writer %d: err = %v, want nil or ErrExists", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no writer won", round)
		}
		mustGet(t, s, name, body(byte(winner), 64<<10))
	}
}

func testList(t *testing.T, s checkpoint.Store) {
	names := []string{"b", "a/2", "a/1", "a/10", "ab", "a/sub/x", "c.d"}
	for _, n := range names {
		mustPut(t, s, n, []byte(n))
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{"a/1", "a/10", "a/2", "a/sub/x", "ab", "b", "c.d"}},
		{"a", []string{"a/1", "a/10", "a/2", "a/sub/x", "ab"}},
		{"a/", []string{"a/1", "a/10", "a/2", "a/sub/x"}},
		{"a/1", []string{"a/1", "a/10"}},
		{"a/sub/", []string{"a/sub/x"}},
		{"c.d", []string{"c.d"}},
		{"zzz", nil},
		{"nothing/here/", nil},
	} {
		got, err := s.List(ctx(t), tc.prefix)
		if err != nil {
			t.Fatalf("List %q: %v", tc.prefix, err)
		}
		if len(got) != len(tc.want) || (len(got) > 0 && !slices.Equal(got, tc.want)) {
			t.Errorf("List %q = %q, want %q", tc.prefix, got, tc.want)
		}
	}
}

func testDelete(t *testing.T, s checkpoint.Store) {
	mustPut(t, s, "d/obj", []byte("x"))
	for i := range 2 { // the second Delete finds nothing and must still succeed
		if err := s.Delete(ctx(t), "d/obj"); err != nil {
			t.Fatalf("Delete #%d: %v", i+1, err)
		}
	}
	_, err := s.Get(ctx(t), "d/obj")
	wantNotFound(t, s, "d/obj", err)
	if err := s.Delete(ctx(t), "never/existed"); err != nil {
		t.Fatalf("Delete of absent object: %v", err)
	}
	if got, err := s.List(ctx(t), "d/"); err != nil || len(got) != 0 {
		t.Fatalf("List after Delete = %q, %v; want empty", got, err)
	}
}

func testInvalidNames(t *testing.T, s checkpoint.Store) {
	for _, name := range []string{"", "/abs", "a//b", "a/../b", "..", ".", "a/", "sp ace", "a\\b", "q?x", "nul\x00"} {
		if checkpoint.ValidName(name) == nil {
			t.Fatalf("suite bug: %q is a valid name", name)
		}
		c := ctx(t)
		if err := checkpoint.PutBytes(c, s, name, []byte("x")); err == nil {
			t.Errorf("Put %q: no error", name)
		}
		if err := s.PutIfAbsent(c, name, []byte("x")); err == nil || errors.Is(err, checkpoint.ErrExists) {
			t.Errorf("PutIfAbsent %q: err = %v, want invalid-name error", name, err)
		}
		if _, err := s.Get(c, name); err == nil || errors.Is(err, checkpoint.ErrNotFound) {
			t.Errorf("Get %q: err = %v, want invalid-name error", name, err)
		}
		if err := s.Delete(c, name); err == nil {
			t.Errorf("Delete %q: no error", name)
		}
	}
	// Nothing may have been created by the rejected calls.
	if got, err := s.List(ctx(t), ""); err != nil || len(got) != 0 {
		t.Fatalf("List after invalid names = %q, %v; want empty", got, err)
	}
}

func testCanceled(t *testing.T, s checkpoint.Store) {
	mustPut(t, s, "c/obj", []byte("x"))
	c, cancel := context.WithCancel(t.Context())
	cancel()
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with canceled context: err = %v, want context.Canceled", op, err)
		}
	}
	check("Put", checkpoint.PutBytes(c, s, "c/new", []byte("x")))
	check("PutIfAbsent", s.PutIfAbsent(c, "c/new2", []byte("x")))
	_, err := s.Get(c, "c/obj")
	check("Get", err)
	_, err = s.List(c, "")
	check("List", err)
	check("Delete", s.Delete(c, "c/obj"))
	mustGet(t, s, "c/obj", []byte("x"))
	for _, name := range []string{"c/new", "c/new2"} {
		if _, err := s.Get(ctx(t), name); !errors.Is(err, checkpoint.ErrNotFound) {
			t.Errorf("%s written despite canceled context (Get err = %v)", name, err)
		}
	}

	// A Put whose stream is cut by cancellation halfway must leave nothing.
	c2, cancel2 := context.WithCancel(t.Context())
	defer cancel2()
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write(body(3, 1<<20))
		cancel2()
		// Unblock a store that is stuck reading: the stream errors out as a
		// snapshot uploader's would when its job is canceled.
		pw.CloseWithError(context.Canceled)
	}()
	err = s.Put(c2, "c/partial", pr, -1)
	pr.Close() // unblock the writer if the store returned before reading
	if err == nil {
		t.Errorf("Put with canceled stream: no error")
	}
	if _, err := s.Get(ctx(t), "c/partial"); !errors.Is(err, checkpoint.ErrNotFound) {
		t.Errorf("partial Put left an object behind (Get err = %v)", err)
	}
}

// testNoPartialReads reads an object while it is being replaced and created:
// every read sees either nothing or one whole version, never a torn mix.
func testNoPartialReads(t *testing.T, s checkpoint.Store) {
	const size = 4 << 20
	v1, v2 := body(1, size), body(2, size)
	mustPut(t, s, "p/replaced", v1)

	c := ctx(t)
	done := make(chan error, 1)
	go func() {
		// A slow writer widens the window in which a torn object could show.
		r := &slowReader{r: bytes.NewReader(v2), chunk: 256 << 10, delay: 5 * time.Millisecond}
		if err := s.Put(c, "p/replaced", r, size); err != nil {
			done <- err
			return
		}
		r = &slowReader{r: bytes.NewReader(v1), chunk: 256 << 10, delay: 5 * time.Millisecond}
		done <- s.Put(c, "p/created", r, -1)
	}()
	for finished := false; !finished; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("concurrent Put: %v", err)
			}
			finished = true
		default:
		}
		if got, err := checkpoint.GetBytes(c, s, "p/replaced"); err != nil {
			t.Fatalf("Get p/replaced during Put: %v", err)
		} else if !bytes.Equal(got, v1) && !bytes.Equal(got, v2) {
			t.Fatalf("Get p/replaced during Put: torn object of %d bytes", len(got))
		}
		got, err := checkpoint.GetBytes(c, s, "p/created")
		switch {
		case errors.Is(err, checkpoint.ErrNotFound):
		case err != nil:
			t.Fatalf("Get p/created during Put: %v", err)
		case !bytes.Equal(got, v1):
			t.Fatalf("Get p/created during Put: partial object of %d bytes", len(got))
		}
		time.Sleep(time.Millisecond)
	}
	mustGet(t, s, "p/replaced", v2)
	mustGet(t, s, "p/created", v1)
}

type slowReader struct {
	r     io.Reader
	chunk int
	delay time.Duration
}

func (s *slowReader) Read(p []byte) (int, error) {
	time.Sleep(s.delay)
	return s.r.Read(p[:min(len(p), s.chunk)])
}
