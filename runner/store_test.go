package runner

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/onceflow/onceflow/checkpoint"
)

func TestParsePointPath(t *testing.T) {
	good := map[string]checkpoint.Kind{
		"j1/wc/checkpoints/00000000000000000007.manifest": checkpoint.KindCheckpoint,
		"j12/wc/savepoints/00000000000000000009/manifest": checkpoint.KindSavepoint,
	}
	for p, kind := range good {
		pp, err := parsePointPath(p)
		if err != nil || pp.kind != kind || pp.engineJob != "wc" {
			t.Errorf("parsePointPath(%q) = %+v, %v", p, pp, err)
		}
	}
	for _, p := range []string{
		"", "/etc/passwd", "j1", "j1/", "../j1/wc/checkpoints/00000000000000000007.manifest",
		"j1/../j2/wc/checkpoints/00000000000000000007.manifest", "x1/wc/checkpoints/00000000000000000007.manifest",
		"j1/wc/checkpoints/7.manifest", "j1/wc/data/00000000000000000007/op-0", "j1/wc/savepoints/00000000000000000009/data/x",
		"j1//wc/checkpoints/00000000000000000007.manifest", "/tmp/onceflow/j1/wc/savepoints/00000000000000000009/manifest",
	} {
		if _, err := parsePointPath(p); !errors.Is(err, ErrOutsideStore) {
			t.Errorf("parsePointPath(%q) = %v, want ErrOutsideStore", p, err)
		}
	}
}

func TestJobStoreURL(t *testing.T) {
	for root, want := range map[string]string{
		"file:///data/ckpt":                            "file:///data/ckpt/j3",
		"file:///data/ckpt/":                           "file:///data/ckpt/j3",
		"s3://bucket/pre?endpoint=h:9000&secure=false": "s3://bucket/pre/j3?endpoint=h:9000&secure=false",
		"s3://bucket":                                  "s3://bucket/j3",
	} {
		got, err := jobStoreURL(root, "j3")
		if err != nil || got != want {
			t.Errorf("jobStoreURL(%q) = %q, %v; want %q", root, got, err, want)
		}
	}
	if _, err := jobStoreURL("/plain/dir", "j1"); err == nil {
		t.Error("a root without a scheme was accepted")
	}
}

func TestTableRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs.json")
	tbl, err := loadTable(path)
	if err != nil || tbl.NextID != 1 || len(tbl.Jobs) != 0 {
		t.Fatalf("empty table: %+v %v", tbl, err)
	}
	tbl.NextID = 3
	tbl.Jobs = append(tbl.Jobs, &Job{ID: "j2", State: StateRunning, PID: 42, Restore: "latest"})
	if err := saveTable(path, tbl); err != nil {
		t.Fatal(err)
	}
	got, err := loadTable(path)
	if err != nil || got.NextID != 3 || len(got.Jobs) != 1 || got.Jobs[0].PID != 42 {
		t.Fatalf("reloaded table: %+v %v", got, err)
	}
	if matches, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".jobs.json.tmp-*")); len(matches) > 0 {
		t.Errorf("temporary files left: %v", matches)
	}
}

func TestValidateSubmitFields(t *testing.T) {
	for _, args := range [][]string{{"-restore", "x"}, {"--parallelism=3"}, {"-a", "-checkpoint-store=file:///x"}} {
		if err := validateArgs(args); !errors.Is(err, ErrInvalid) {
			t.Errorf("validateArgs(%q) = %v", args, err)
		}
	}
	if err := validateArgs([]string{"-rate", "5", "--", "-restore"}); err != nil {
		t.Errorf("positional arguments after -- were checked: %v", err)
	}
	for _, cfg := range []map[string]string{{"bogus": "1"}, {"checkpoint-interval": "soon"}, {"checkpoints-retained": "-1"}, {"allow-non-restored-state": "maybe"}} {
		if err := validateConfig(cfg); !errors.Is(err, ErrInvalid) {
			t.Errorf("validateConfig(%v) = %v", cfg, err)
		}
	}
	if err := validateConfig(map[string]string{"checkpoint-interval": "200ms", "restart": "none"}); err != nil {
		t.Error(err)
	}
	if err := validateEnv(map[string]string{"ONCEFLOW_RESTORE": "none"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("env may set the restore point: %v", err)
	}
}
