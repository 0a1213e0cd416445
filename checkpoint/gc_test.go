package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// Object names in the GC tests are written short, for job "j":
//
//	m5      checkpoint manifest 5       sm5     savepoint manifest 5
//	d5/x    data x of checkpoint 5      s5/x    data x of savepoint 5
//
// Any other name is taken as is.
func gcTestName(t testing.TB, short string) string {
	t.Helper()
	parse := func(s string) uint64 {
		id, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("bad id in %q: %v", short, err)
		}
		return id
	}
	switch {
	case strings.HasPrefix(short, "sm"):
		return SavepointManifestName("j", parse(short[2:]))
	case strings.HasPrefix(short, "m"):
		return ManifestName("j", parse(short[1:]))
	case strings.HasPrefix(short, "d") || strings.HasPrefix(short, "s"):
		id, rest, ok := strings.Cut(short[1:], "/")
		if !ok {
			break
		}
		return ObjectName("j", map[byte]Kind{'d': KindCheckpoint, 's': KindSavepoint}[short[0]], parse(id), rest)
	}
	return short
}

// gcTestShort is the inverse of gcTestName, for output.
func gcTestShort(name string) string {
	if id, ok := parseManifestName("j", name); ok {
		return fmt.Sprintf("m%d", id)
	}
	if id, ok := parseSavepointManifestName("j", name); ok {
		return fmt.Sprintf("sm%d", id)
	}
	if id, ok := ParseDataID("j", name); ok {
		return fmt.Sprintf("d%d/%s", id, name[len(DataName("j", id, "")):])
	}
	if rest, ok := strings.CutPrefix(name, "j/savepoints/"); ok && len(rest) > layoutIDWidth {
		if id, ok := layoutParseID(rest[:layoutIDWidth]); ok {
			if obj, ok := strings.CutPrefix(rest[layoutIDWidth:], "/data/"); ok {
				return fmt.Sprintf("s%d/%s", id, obj)
			}
		}
	}
	return name
}

func gcTestReport(rep Report, err error) string {
	var b strings.Builder
	fmt.Fprintf(&b, "retained %v, deleted %d manifests and %d objects (%d bytes known, %d unsized)\n",
		rep.Retained, rep.Manifests, rep.Objects, rep.Bytes, rep.UnsizedObjects)
	if err != nil {
		fmt.Fprintf(&b, "error: %v\n", err)
	}
	return b.String()
}

// TestRetainScript runs the scenarios of testdata/gc/*. Commands:
//
//	checkpoint id=N / savepoint id=N   write a manifest; input: referenced objects
//	put / corrupt / fail-get           create, overwrite with garbage, or fail reads of the input objects
//	retain keep=K [fail-delete=N]      run Retain (the Nth delete fails); prints the report
//	ls                                 list the store
//	verify                             VerifyHandles every manifest in the store
func TestRetainScript(t *testing.T) {
	datadriven.Walk(t, "testdata/gc", func(t *testing.T, path string) {
		s := newCatalogTestStore()
		ctx := context.Background()
		inputNames := func(t *testing.T, d *datadriven.TestData) []string {
			var names []string
			for _, f := range strings.Fields(d.Input) {
				names = append(names, gcTestName(t, f))
			}
			return names
		}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "checkpoint", "savepoint":
				var id uint64
				d.ScanArgs(t, "id", &id)
				kind := map[string]Kind{"checkpoint": KindCheckpoint, "savepoint": KindSavepoint}[d.Cmd]
				catalogTestSnapshot(t, s, kind, id, inputNames(t, d)...)
				return ""
			case "put", "corrupt":
				for _, name := range inputNames(t, d) {
					s.objs[name] = []byte("garbage " + name)
				}
				return ""
			case "fail-get":
				for _, name := range inputNames(t, d) {
					s.failGet[name] = errors.New("injected read failure")
				}
				return ""
			case "retain":
				var keep int
				d.ScanArgs(t, "keep", &keep)
				s.deleteCalls, s.failDeleteAt = 0, 0
				d.MaybeScanArgs(t, "fail-delete", &s.failDeleteAt)
				return gcTestReport(Retain(ctx, s, "j", keep))
			case "ls":
				var b strings.Builder
				for _, name := range s.names() {
					fmt.Fprintln(&b, gcTestShort(name))
				}
				return b.String()
			case "verify":
				return gcTestVerifyAll(t, s)
			}
			d.Fatalf(t, "unknown command %s", d.Cmd)
			return ""
		})
	})
}

// gcTestVerifyAll checks the invariant GC must keep at every instant: every
// manifest in the store references only objects that exist, intact.
func gcTestVerifyAll(t testing.TB, s *catalogTestStore) string {
	t.Helper()
	var b strings.Builder
	for _, name := range s.names() {
		_, cp := parseManifestName("j", name)
		_, sp := parseSavepointManifestName("j", name)
		if !cp && !sp {
			continue
		}
		m, err := ReadManifest(context.Background(), s, name)
		if err == nil {
			err = VerifyHandles(context.Background(), s, m)
		}
		if err != nil {
			fmt.Fprintf(&b, "%s: %v\n", gcTestShort(name), err)
		}
	}
	if b.Len() == 0 {
		return "ok\n"
	}
	return b.String()
}

// gcTestScenario builds a store with shared objects, a savepoint that
// references checkpoint data, garbage of an aborted checkpoint and the
// objects of a checkpoint in progress.
func gcTestScenario(t testing.TB) *catalogTestStore {
	s := newCatalogTestStore()
	d := func(id uint64, x string) string { return DataName("j", id, x) }
	catalogTestSnapshot(t, s, KindCheckpoint, 1, d(1, "a"), d(1, "b"))
	catalogTestSnapshot(t, s, KindCheckpoint, 2, d(1, "a"), d(2, "c"))
	catalogTestSnapshot(t, s, KindSavepoint, 3, SavepointDataName("j", 3, "x"), d(2, "c"))
	catalogTestSnapshot(t, s, KindCheckpoint, 4, d(1, "a"), d(4, "e"))
	s.objs[d(5, "aborted")] = []byte("aborted checkpoint 5")
	catalogTestSnapshot(t, s, KindCheckpoint, 6, d(4, "e"), d(6, "f"))
	catalogTestSnapshot(t, s, KindCheckpoint, 7, d(6, "f"), d(7, "g"))
	s.objs[d(8, "in-progress")] = []byte("checkpoint 8, not complete yet")
	s.objs["j/data/unattributable"] = []byte("?")
	return s
}

func TestRetainKeepsNewest(t *testing.T) {
	for keep := 1; keep <= 6; keep++ {
		t.Run(fmt.Sprint("keep=", keep), func(t *testing.T) {
			ctx := context.Background()
			s := gcTestScenario(t)
			all, _ := ListCheckpoints(ctx, s, "j")
			rep, err := Retain(ctx, s, "j", keep)
			if err != nil {
				t.Fatal(err)
			}
			want := all[max(0, len(all)-keep):]
			got, _ := ListCheckpoints(ctx, s, "j")
			if !slices.Equal(got, want) || !slices.Equal(rep.Retained, want) || rep.Manifests != len(all)-len(want) {
				t.Fatalf("kept %v, report %+v; want %v", got, rep, want)
			}
			if v := gcTestVerifyAll(t, s); v != "ok\n" {
				t.Fatal(v)
			}
			for _, name := range []string{DataName("j", 8, "in-progress"), "j/data/unattributable",
				SavepointManifestName("j", 3), SavepointDataName("j", 3, "x"), DataName("j", 2, "c")} {
				if _, ok := s.objs[name]; !ok {
					t.Errorf("%s was deleted", name)
				}
			}
			if _, ok := s.objs[DataName("j", 5, "aborted")]; ok {
				t.Errorf("garbage of aborted checkpoint 5 survived")
			}
		})
	}
}

// Killing Retain before any of its deletes leaves a consistent store, and a
// second run finishes the job.
func TestRetainInterruptSafety(t *testing.T) {
	ctx := context.Background()
	want := gcTestScenario(t)
	if _, err := Retain(ctx, want, "j", 1); err != nil {
		t.Fatal(err)
	}
	total := want.deleteCalls
	if total < 5 {
		t.Fatalf("scenario too small: %d deletes", total)
	}
	for n := 1; n <= total; n++ {
		s := gcTestScenario(t)
		s.failDeleteAt = n
		rep, err := Retain(ctx, s, "j", 1)
		if err == nil {
			t.Fatalf("delete %d of %d failed but Retain succeeded", n, total)
		}
		if got := rep.Manifests + rep.Objects; got != n-1 {
			t.Errorf("delete %d failed: report counts %d deletes, want %d", n, got, n-1)
		}
		if v := gcTestVerifyAll(t, s); v != "ok\n" {
			t.Fatalf("after delete %d failed, a manifest references a deleted object:\n%s", n, v)
		}
		if _, ok := s.objs[DataName("j", 8, "in-progress")]; !ok {
			t.Fatalf("after delete %d failed, in-progress data is gone", n)
		}
		s.failDeleteAt = 0
		if _, err := Retain(ctx, s, "j", 1); err != nil {
			t.Fatalf("second Retain after delete %d failed: %v", n, err)
		}
		if !slices.Equal(s.names(), want.names()) {
			t.Fatalf("after delete %d failed and a second run:\n%v\nwant\n%v", n, s.names(), want.names())
		}
	}
}

func TestRetainRefusesOnIncompleteKnowledge(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		damage func(s *catalogTestStore)
		want   string
	}{
		{"newest checkpoint corrupt", func(s *catalogTestStore) { s.objs[ManifestName("j", 7)] = []byte("x") },
			"mark (nothing deleted): decode manifest j/checkpoints/00000000000000000007.manifest in test://store: corrupt checkpoint data: bad magic"},
		{"retained checkpoint unreadable", func(s *catalogTestStore) { s.failGet[ManifestName("j", 6)] = errors.New("timeout") },
			"mark (nothing deleted): read manifest j/checkpoints/00000000000000000006.manifest in test://store: timeout"},
		{"savepoint corrupt", func(s *catalogTestStore) { s.objs[SavepointManifestName("j", 3)] = []byte("OFCKMF") },
			"mark (nothing deleted): decode manifest j/savepoints/00000000000000000003/manifest"},
		{"list fails", func(s *catalogTestStore) { s.failList = errors.New("bucket gone") }, "bucket gone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := gcTestScenario(t)
			before := s.names()
			tc.damage(s)
			_, err := Retain(ctx, s, "j", 2)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant one containing %q", err, tc.want)
			}
			if s.deleteCalls != 0 || !slices.Equal(s.names(), before) {
				t.Fatalf("store changed although Retain failed: %d deletes", s.deleteCalls)
			}
		})
	}
}

func TestRetainArguments(t *testing.T) {
	ctx := context.Background()
	s := gcTestScenario(t)
	if _, err := Retain(ctx, s, "j", 0); err == nil || !strings.Contains(err.Error(), "keep 0 < 1") {
		t.Fatalf("keep 0: %v", err)
	}
	if _, err := Retain(ctx, s, "../j", 1); err == nil {
		t.Fatal("bad job name accepted")
	}
	if s.deleteCalls != 0 {
		t.Fatal("deleted on bad arguments")
	}
}
