package engine

import (
	"fmt"
	"testing"
)

func TestKeyGroupRangesPartitionAllGroups(t *testing.T) {
	for _, maxPar := range []int{1, 7, 128, 1000} {
		for p := 1; p <= min(maxPar, 9); p++ {
			next := 0
			for i := 0; i < p; i++ {
				r := KeyGroupRange(maxPar, p, i)
				if r.Start != next || r.Empty() {
					t.Fatalf("max %d p %d subtask %d: range %v, want start %d, non-empty", maxPar, p, i, r, next)
				}
				for kg := r.Start; kg < r.End; kg++ {
					if s := subtaskForKeyGroup(maxPar, p, kg); s != i {
						t.Fatalf("max %d p %d: key group %d in range of %d but owner says %d", maxPar, p, kg, i, s)
					}
				}
				next = r.End
			}
			if next != maxPar {
				t.Fatalf("max %d p %d: ranges end at %d", maxPar, p, next)
			}
		}
	}
}

func TestKeyGroupIsStableAndSpread(t *testing.T) {
	// Pinned values: changing the hash would silently move every key's
	// state to another subtask on restore.
	for key, want := range map[string]int{"": 38, "a": 91, "hello": 68, "onceflow": 17} {
		if got := KeyGroup([]byte(key), 128); got != want {
			t.Errorf("KeyGroup(%q) = %d, want %d: the key hash changed", key, got, want)
		}
	}
	counts := make([]int, 128)
	for i := 0; i < 128000; i++ {
		counts[KeyGroup([]byte(fmt.Sprint("key-", i)), 128)]++
	}
	for kg, c := range counts {
		if c < 800 || c > 1200 {
			t.Fatalf("key group %d got %d of 128000 keys: poor spread", kg, c)
		}
	}
}
