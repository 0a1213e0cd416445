package checkpoint

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestLayoutNames(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{ManifestName("wc", 7), "wc/checkpoints/00000000000000000007.manifest"},
		{ManifestName("wc", math.MaxUint64), "wc/checkpoints/18446744073709551615.manifest"},
		{DataName("wc", 7, "count/3/000012.sst"), "wc/data/00000000000000000007/count/3/000012.sst"},
		{SavepointManifestName("wc", 12), "wc/savepoints/00000000000000000012/manifest"},
		{SavepointDataName("wc", 12, "count/0/a.sst"), "wc/savepoints/00000000000000000012/data/count/0/a.sst"},
		{ObjectName("wc", KindCheckpoint, 7, "x"), "wc/data/00000000000000000007/x"},
		{ObjectName("wc", KindSavepoint, 7, "x"), "wc/savepoints/00000000000000000007/data/x"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
		if err := ValidName(tc.got); err != nil {
			t.Errorf("%s: %v", tc.got, err)
		}
	}
}

// Stores list in lexical order; padding makes it the numeric order of ids.
func TestLayoutLexicalOrderIsIDOrder(t *testing.T) {
	ids := []uint64{0, 1, 9, 10, 99, 100, 1 << 32, math.MaxUint64 - 1, math.MaxUint64}
	var names []string
	for _, id := range ids {
		names = append(names, ManifestName("j", id))
	}
	if !slices.IsSorted(names) {
		t.Fatalf("names not sorted like ids: %v", names)
	}
}

func TestLayoutObjectNameUnknownKindPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	ObjectName("j", 0, 1, "x")
}

func TestParseDataID(t *testing.T) {
	for _, tc := range []struct {
		job, name string
		id        uint64
		ok        bool
	}{
		{"wc", DataName("wc", 42, "a"), 42, true},
		{"wc", DataName("wc", math.MaxUint64, "op/1/a.sst"), math.MaxUint64, true},
		{"wc", DataName("wc", 0, "a"), 0, true},
		{"wc", "wc/data/00000000000000000042/", 0, false},                // no object
		{"wc", "wc/data/00000000000000000042", 0, false},                 // no object
		{"wc", "wc/data/0000000000000000042/a", 0, false},                // 19 digits
		{"wc", "wc/data/000000000000000000042/a", 0, false},              // 21 digits
		{"wc", "wc/data/99999999999999999999/a", 0, false},               // overflows uint64
		{"wc", "wc/data/+0000000000000000042/a", 0, false},               // sign
		{"wc", "wc/data/0000000000000000004x/a", 0, false},               // not a digit
		{"wc", "wcx/data/00000000000000000042/a", 0, false},              // other job
		{"w", "wc/data/00000000000000000042/a", 0, false},                // job is a prefix of another
		{"wc", SavepointDataName("wc", 42, "a"), 0, false},               // savepoint data
		{"wc", "wc/checkpoints/00000000000000000042.manifest", 0, false}, // manifest
		{"wc", "other/wc/data/00000000000000000042/a", 0, false},         // not at the root
		{"wc", "wc/data/00000000000000000042.tmp/a", 0, false},           // suffix on the id
	} {
		id, ok := ParseDataID(tc.job, tc.name)
		if id != tc.id || ok != tc.ok {
			t.Errorf("ParseDataID(%q, %q) = %d, %v; want %d, %v", tc.job, tc.name, id, ok, tc.id, tc.ok)
		}
	}
}

func TestParseManifestNames(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cp, sp bool
		id     uint64
	}{
		{ManifestName("j", 5), true, false, 5},
		{SavepointManifestName("j", 6), false, true, 6},
		{"j/checkpoints/00000000000000000005.manifest.tmp", false, false, 0},
		{"j/checkpoints/5.manifest", false, false, 0},
		{"j/checkpoints/00000000000000000005", false, false, 0},
		{"j/savepoints/00000000000000000006/data/manifest", false, false, 0},
		{"j/savepoints/00000000000000000006/manifest/x", false, false, 0},
		{"k/checkpoints/00000000000000000005.manifest", false, false, 0},
	} {
		id, ok := parseManifestName("j", tc.name)
		if ok != tc.cp || (ok && id != tc.id) {
			t.Errorf("parseManifestName(%q) = %d, %v", tc.name, id, ok)
		}
		id, ok = parseSavepointManifestName("j", tc.name)
		if ok != tc.sp || (ok && id != tc.id) {
			t.Errorf("parseSavepointManifestName(%q) = %d, %v", tc.name, id, ok)
		}
	}
}

func TestValidJobName(t *testing.T) {
	for _, tc := range []struct{ job, err string }{
		{"wordcount", ""},
		{"word-count_v2.1", ""},
		{"", "empty job name"},
		{"a/b", "single path segment"},
		{"/a", "single path segment"},
		{".", "'.' or '..'"},
		{"..", "'.' or '..'"},
		{"a b", `character ' ' not allowed`},
		{"caf\u00e9", "not allowed"},
	} {
		err := ValidJobName(tc.job)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ValidJobName(%q) = %v, want %q", tc.job, err, tc.err)
		}
	}
}
