package checkpoint

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
)

// Opener opens a store from its URL. Concrete stores register one per URL
// scheme in their init function, like database/sql drivers, so that the engine
// can open a store named on the command line without importing any store.
type Opener func(ctx context.Context, u *url.URL) (Store, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]Opener{}
)

// Register makes a store available under a URL scheme ("file", "s3").
// It panics if the scheme is registered twice: that is a wiring bug.
func Register(scheme string, open Opener) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[scheme]; dup {
		panic("checkpoint: store scheme registered twice: " + scheme)
	}
	registry[scheme] = open
}

// Open opens the store named by rawURL, such as "file:///var/lib/ckpt" or
// "s3://bucket/prefix".
func Open(ctx context.Context, rawURL string) (Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("checkpoint store URL %q: %w", rawURL, err)
	}
	if u.Scheme == "" {
		return nil, fmt.Errorf("checkpoint store URL %q: missing scheme (want file:///path or s3://bucket/prefix)", rawURL)
	}
	registryMu.RLock()
	open, ok := registry[u.Scheme]
	schemes := make([]string, 0, len(registry))
	for s := range registry {
		schemes = append(schemes, s)
	}
	registryMu.RUnlock()
	if !ok {
		sort.Strings(schemes)
		return nil, fmt.Errorf("checkpoint store URL %q: no store registered for scheme %q (registered: %s; import github.com/onceflow/onceflow/checkpoint/fsstore or .../s3store)",
			rawURL, u.Scheme, strings.Join(schemes, ", "))
	}
	s, err := open(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("checkpoint store URL %q: %w", rawURL, err)
	}
	return s, nil
}
