package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// newClient creates a franz-go client for brokers with our options, then the
// user's extra options (TLS, SASL...), which win.
func newClient(brokers []string, extra []kgo.Opt, opts ...kgo.Opt) (*kgo.Client, error) {
	all := append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)
	all = append(all, extra...)
	cl, err := kgo.NewClient(all...)
	if err != nil {
		return nil, fmt.Errorf("create kafka client for %v: %w", brokers, err)
	}
	return cl, nil
}

// retriable reports whether a request may succeed if sent again: a broker
// error that Kafka marks retriable or that a coordinator returns while it
// moves or loads, or a connection failure (the client retries those itself
// for a while; a broker restart outlasts that). Anything else, our own
// verdicts included, is final.
func retriable(err error) bool {
	if errors.Is(err, errTxnLost) {
		return false
	}
	if errors.Is(err, errNotStable) {
		return true
	}
	if ke, ok := errors.AsType[*kerr.Error](err); ok {
		return ke.Retriable || errors.Is(err, kerr.ConcurrentTransactions) ||
			errors.Is(err, kerr.CoordinatorNotAvailable) || errors.Is(err, kerr.NotCoordinator) ||
			errors.Is(err, kerr.CoordinatorLoadInProgress)
	}
	if _, ok := errors.AsType[*net.OpError](err); ok {
		return true
	}
	return kgo.IsRetryableBrokerErr(err)
}

// retry calls f until it succeeds, fails with a non-retriable error, or
// timeout passes; it backs off from 10ms to 1s between attempts.
func retry(ctx context.Context, timeout time.Duration, what string, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	backoff := 10 * time.Millisecond
	var last error
	for attempt := 1; ; attempt++ {
		err := f(ctx)
		if err == nil {
			return nil
		}
		if !retriable(err) {
			return err
		}
		last = err
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: gave up after %d attempts in %v: %w", what, attempt, timeout, last)
		}
		backoff = min(2*backoff, time.Second)
	}
}
