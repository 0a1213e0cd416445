// Package benchkit is what the benchmark programs share: the Kafka input
// they all read (so that the engine's jobs, the raw baseline and the goka
// peer process the very same records in the same partitions), readings of
// the process's CPU time and peak memory, and CPU profiles.
//
// The goka peer is a module of its own but lives under bench/, so it may
// import this internal package.
package benchkit

import (
	"context"
	"os"
	"runtime/pprof"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// WriteInput writes records keyed k0..k<keys-1> round-robin, each value of
// valueSize bytes (its sequence number, padded with 'x'), with an
// idempotent producer. Keyed, so that each key is in one partition (the
// default partitioner hashes the key), as the keyed count's oracle needs.
func WriteInput(ctx context.Context, brokers []string, topic string, records, keys, valueSize int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		return err
	}
	defer cl.Close()
	var mu sync.Mutex
	var perr error
	pad := make([]byte, valueSize)
	for i := range pad {
		pad[i] = 'x'
	}
	for seq := 0; seq < records; seq++ {
		v := strconv.AppendInt(nil, int64(seq), 10)
		v = append(v, pad[min(len(v), valueSize):]...)
		cl.Produce(ctx, &kgo.Record{Key: []byte("k" + strconv.Itoa(seq%keys)), Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				perr = err
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	return perr
}

// CPUSeconds is the user and system CPU time of this process so far.
func CPUSeconds() float64 {
	ru := rusage()
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// MaxRSSMiB is the peak resident memory of this process so far.
func MaxRSSMiB() float64 { return float64(rusage().Maxrss) / 1024 }

func rusage() syscall.Rusage {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru
}

// StartCPUProfile starts a CPU profile into path ("" profiles nothing).
// stop may be called more than once.
func StartCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			pprof.StopCPUProfile()
			f.Close()
			// The allocations since the program started, next to it:
			// what the garbage collector's share of the CPU profile
			// comes from.
			if a, err := os.Create(path + ".allocs"); err == nil {
				pprof.Lookup("allocs").WriteTo(a, 0)
				a.Close()
			}
		})
	}, nil
}
