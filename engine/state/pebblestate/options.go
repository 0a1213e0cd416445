package pebblestate

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

// Options configure the Pebble state backend. The zero value of every field
// but Dir has a documented default.
type Options struct {
	// Dir is the local directory under which every subtask keeps its
	// database, its snapshots' local copies (for local recovery) and its
	// changelog: <Dir>/<job>/<operator>/<subtask>/. Required. It is scratch
	// space: the checkpoint store, not Dir, is what makes state durable.
	Dir string

	// WriteCacheSize bounds, in bytes, the write-back cache of encoded
	// values in front of Pebble (per subtask). Entries written since the
	// last snapshot stay there until the snapshot's asynchronous part has
	// written them to Pebble (off the record path); when they exceed half
	// of it they are spilled to Pebble inline. Entries already in Pebble
	// stay as a read cache and are evicted when the cache is full. Size it
	// to the working set: a miss costs a Pebble point read (microseconds;
	// bench/state measures it). When the whole state fits (as a rule of
	// thumb 130 bytes per entry beyond its key and value), reads never go
	// to Pebble: even after a restore, which loads the state into the
	// cache. Default 256 MiB, about two million small entries; the cache
	// only takes what the state needs.
	WriteCacheSize int64

	// BlockCacheSize is Pebble's block cache, in bytes, per subtask.
	// Default 64 MiB.
	BlockCacheSize int64

	// MemTableSize is Pebble's memtable size, in bytes. Changes reach Pebble
	// as ingested SSTs, not through the memtable, so it stays small. Default
	// 4 MiB.
	MemTableSize uint64

	// BloomBitsPerKey sets the bloom filter of every level, which lets a
	// point lookup of an absent key skip most files. Default 10 (about 1%
	// false positives); negative disables bloom filters.
	BloomBitsPerKey int

	// MaterializeRatio decides when a snapshot rewrites its base: a snapshot
	// normally uploads only the changelog of what changed since the previous
	// one, and materializes (uploads the Pebble files not already in the
	// store) once the changelog accumulated since the last materialization
	// exceeds this fraction of the base's size. Lower means faster restores
	// (less changelog to replay) and more upload and CPU: a materialization
	// first writes every change queued in memory into Pebble, and under
	// updates spread over the whole key space that is a rewrite of the
	// state, compacted again afterwards. Default 4: with 1M keys, a restore
	// replaying eight segments that each changed 55% of the keys took 0.9 s
	// against 0.3 s for one, while materializing four times less often
	// saved about 3% of the CPU of bench/suite's keyed count with 1 s
	// checkpoints (which changes that many keys a second). Flink's changelog
	// backend materializes every ten minutes by default.
	MaterializeRatio float64

	// MaxChangelogSegments also forces a materialization once this many
	// snapshots' changelogs accumulated. Default 64.
	MaxChangelogSegments int

	// TransferConcurrency is the number of files uploaded or downloaded at
	// once by one subtask. Default 4.
	TransferConcurrency int

	// LocalRecovery keeps local copies of the files of the latest snapshots
	// under Dir and restores from them, after verifying their size and
	// checksum against the checkpoint, instead of downloading them. Default
	// true; set DisableLocalRecovery to turn it off.
	DisableLocalRecovery bool

	// Logger receives Pebble's errors and the backend's warnings. Default
	// slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.WriteCacheSize == 0 {
		o.WriteCacheSize = 256 << 20
	}
	if o.BlockCacheSize == 0 {
		o.BlockCacheSize = 64 << 20
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = 4 << 20
	}
	if o.BloomBitsPerKey == 0 {
		o.BloomBitsPerKey = 10
	}
	if o.MaterializeRatio == 0 {
		o.MaterializeRatio = 4
	}
	if o.MaxChangelogSegments == 0 {
		o.MaxChangelogSegments = 64
	}
	if o.TransferConcurrency == 0 {
		o.TransferConcurrency = 4
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Validate reports every invalid setting.
func (o Options) Validate() error {
	var errs []error
	if o.Dir == "" {
		errs = append(errs, errors.New("no local directory (Options.Dir)"))
	}
	if o.WriteCacheSize < 0 {
		errs = append(errs, fmt.Errorf("write cache size %d: must not be negative", o.WriteCacheSize))
	}
	if o.BlockCacheSize < 0 {
		errs = append(errs, fmt.Errorf("block cache size %d: must not be negative", o.BlockCacheSize))
	}
	if o.MemTableSize != 0 && o.MemTableSize < 1<<20 {
		errs = append(errs, fmt.Errorf("memtable size %d: must be at least 1 MiB", o.MemTableSize))
	}
	if o.MaterializeRatio < 0 {
		errs = append(errs, fmt.Errorf("materialize ratio %v: must not be negative", o.MaterializeRatio))
	}
	if o.MaxChangelogSegments < 0 {
		errs = append(errs, fmt.Errorf("max changelog segments %d: must not be negative", o.MaxChangelogSegments))
	}
	if o.TransferConcurrency < 0 {
		errs = append(errs, fmt.Errorf("transfer concurrency %d: must not be negative", o.TransferConcurrency))
	}
	if len(errs) > 0 {
		return fmt.Errorf("pebblestate: invalid options: %w", errors.Join(errs...))
	}
	return nil
}

// pebbleOptions are the options of every database the backend opens. The
// WAL is off: durability comes from checkpoints, and a snapshot flushes the
// memtable before it takes a Pebble checkpoint (a checkpoint of a database
// without WAL silently leaves out what is only in the memtable).
func (o Options) pebbleOptions(cache *pebble.Cache) *pebble.Options {
	po := &pebble.Options{
		Cache:              cache,
		DisableWAL:         true,
		MemTableSize:       o.MemTableSize,
		FormatMajorVersion: pebble.FormatNewest,
		// A materialization uploads the MANIFEST: keep it small.
		MaxManifestFileSize: 4 << 20,
		Logger:              pebbleLogger{o.Logger},
		CompactionConcurrencyRange: func() (int, int) {
			return 1, max(1, runtime.GOMAXPROCS(0)/2)
		},
		// Every snapshot ingests its changelog segment into L0, and
		// segments span the whole key range, so each L0 compaction
		// rewrites most of the state: the default threshold (4 sublevels)
		// spent more CPU compacting than the record path spent updating
		// state (bench/suite's keyed count, 1M keys, checkpoints every
		// second; far worse every 100 ms). Point reads pay for the deeper
		// L0 only on write-cache misses, and bloom filters skip most
		// files.
		L0CompactionThreshold: 16,
		L0StopWritesThreshold: 64,
	}
	for i := range po.Levels {
		if o.BloomBitsPerKey > 0 {
			po.Levels[i].FilterPolicy = bloom.FilterPolicy(o.BloomBitsPerKey)
		}
	}
	po.EnsureDefaults()
	return po
}

// pebbleLogger drops Pebble's chatter and keeps its errors.
type pebbleLogger struct{ l *slog.Logger }

func (pebbleLogger) Infof(string, ...any) {}
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error("pebble: " + fmt.Sprintf(format, args...))
}
func (p pebbleLogger) Fatalf(format string, args ...any) {
	// Pebble calls Fatalf for invariant violations and expects it not to
	// return; panicking lets the engine turn it into a subtask failure.
	panic(fmt.Sprintf("pebble: "+format, args...))
}
