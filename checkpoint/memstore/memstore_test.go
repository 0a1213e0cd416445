package memstore_test

import (
	"context"
	"strings"
	"testing"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/checkpoint/memstore"
	"github.com/onceflow/onceflow/checkpoint/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) checkpoint.Store { return memstore.New() })
}

func TestOpenSameNameSameStore(t *testing.T) {
	ctx := context.Background()
	a, err := checkpoint.Open(ctx, "mem://shared-"+t.Name())
	if err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.PutBytes(ctx, a, "x", []byte("1")); err != nil {
		t.Fatal(err)
	}
	b, err := checkpoint.Open(ctx, "mem://shared-"+t.Name())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := checkpoint.GetBytes(ctx, b, "x"); err != nil || string(got) != "1" {
		t.Fatalf("second Open does not see the first one's object: %q, %v", got, err)
	}
	other, err := checkpoint.Open(ctx, "mem://other-"+t.Name())
	if err != nil {
		t.Fatal(err)
	}
	if names, err := other.List(ctx, ""); err != nil || len(names) != 0 {
		t.Fatalf("differently named store is not empty: %q, %v", names, err)
	}
	if want := "mem://shared-" + t.Name(); a.String() != want {
		t.Fatalf("String() = %q, want %q", a.String(), want)
	}
}

func TestOpenBadURLs(t *testing.T) {
	for url, want := range map[string]string{
		"mem://":       "missing store name",
		"mem:name":     "want mem://name",
		"mem://a/b":    "unexpected path",
		"mem://a?x=1":  "no query",
		"mem://u@a":    "plain name",
		"mem://a:1":    "plain name",
		"mem://a#frag": "no query or fragment",
	} {
		_, err := checkpoint.Open(context.Background(), url)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%q) = %v, want error containing %q", url, err, want)
		}
	}
}
