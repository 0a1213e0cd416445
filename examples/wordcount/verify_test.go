package main

import (
	"strings"
	"testing"
)

func TestCompare(t *testing.T) {
	want := map[string]int64{"a": 3, "b": 2}
	for _, c := range []struct {
		got  map[string][]int64
		fail string
	}{
		{map[string][]int64{"a": {3, 1, 2}, "b": {2, 1}}, ""},
		{map[string][]int64{"a": {1, 2}, "b": {1}}, ""}, // lagging, consistent
		{map[string][]int64{"a": {1, 3}}, "a: count 2 missing (lost)"},
		{map[string][]int64{"a": {1, 1, 2}}, "a: count 1 twice (duplicate)"},
		{map[string][]int64{"b": {1, 2, 3}}, "b: count 3 but only 2 in the input (phantom)"},
		{map[string][]int64{"c": {1}}, "c: count 1 but only 0 in the input (phantom)"},
	} {
		err := compare(want, c.got)
		if (err == nil) != (c.fail == "") || err != nil && !strings.Contains(err.Error(), c.fail) {
			t.Errorf("compare(%v) = %v, want %q", c.got, err, c.fail)
		}
	}
}
