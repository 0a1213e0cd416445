package kafkajob

import (
	"testing"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/engine"
)

func TestEchoRoundTrip(t *testing.T) {
	e := Echo{Key: "k17", Partition: 3, Offset: 1 << 40, N: 12}
	got, err := Decode(e.Encode())
	if err != nil || got != e {
		t.Fatalf("round trip of %+v: %+v, %v", e, got, err)
	}
	for _, bad := range []string{"", "k 1 2", "k x 2 3", "k 1 2 3 4"} {
		if _, err := Decode(bad); err == nil {
			t.Errorf("Decode(%q) accepted it", bad)
		}
	}
}

func TestKeys(t *testing.T) {
	seen := map[string]int{}
	for seq := uint64(0); seq < 100_000; seq++ {
		seen[Key(seq, 1000, 10)]++
	}
	if len(seen) != 1001 || seen["hot"] != 10_000 || seen["k0"] != 90 {
		t.Fatalf("%d keys, hot %d, k0 %d; want 1001 keys, hot 10000, k0 90", len(seen), seen["hot"], seen["k0"])
	}
}

func TestKillHookSpec(t *testing.T) {
	t.Setenv(KillEnv, "")
	if h, err := KillHook(); h != nil || err != nil {
		t.Fatalf("unset: %v %v", h, err)
	}
	for _, bad := range []string{"before-notify", "upload:0", "upload:x", "commit:2,pre-commit"} {
		t.Setenv(KillEnv, bad)
		if _, err := KillHook(); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	// A point that is asked for at its third occurrence lets the first two
	// and every other point through.
	t.Setenv(KillEnv, "upload:3")
	h, err := KillHook()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		for _, p := range []engine.FaultPoint{engine.FaultUpload, engine.FaultCommit} {
			if err := h(p, checkpoint.TaskID{Operator: "count"}, 1); err != nil {
				t.Fatal(err)
			}
		}
	}
}
