package pebblestate

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Pebble gets the changes of the write cache in batches of epochs: one
// table holding every key changed since the last ingestion, once, with its
// newest value, taken from the cache itself. Ingesting every snapshot's
// changes made each one a new L0 sublevel spanning the whole key range,
// and every few of them an L0 compaction rewrote most of the state; and a
// key changed in every epoch was sorted and written every epoch.
//
// Until they are ingested, an epoch's entries stay in the write cache and
// may not be evicted (reads of them never reach Pebble, which lacks them).
// Writing an epoch's segment lists them, each entry once however many
// epochs wrote it (unapplied), so that an ingestion finds them. Once its
// segment is written, the record path may update an entry in place (the
// segment has its value), except while an ingestion that covers its epoch
// has been asked for and has not captured it yet (held): the ingestion
// must see the values of its own epochs, not of later ones.
//
// A snapshot asks for an ingestion (Snapshot decides, on the record path,
// so that it can hold the entries at once) when it materializes (Pebble
// must then hold exactly its state), when maxUnappliedEpochs epochs wait,
// or when the entries waiting would crowd out the evictable ones.
const maxUnappliedEpochs = 16

// ingestBudget is what the entries waiting for ingestion may take of the
// write cache (cache bytes, each entry counted once).
func (b *backend) ingestBudget() int64 { return b.opts.WriteCacheSize / 2 }

// wantIngest decides whether the snapshot of the epoch being closed asks
// for an ingestion. Record path.
func (b *backend) wantIngest(materialize bool) bool {
	return materialize || len(b.frozen) >= maxUnappliedEpochs || b.frozenBytes >= b.ingestBudget()
}

// held reports whether entries of epoch e must be copied, not updated in
// place, because an ingestion covering e has not captured them yet. Record
// path.
func (b *backend) held(e uint64) bool { return e > b.capturedSeen && e <= b.holdHi }

// ingest writes the newest version of every entry of the unapplied epochs,
// through epoch through, into Pebble as one table, and marks them applied,
// also when none changed anything (the record path then forgets their
// snapshots). Under wmu.
func (b *backend) ingest(through uint64) error {
	start := time.Now()
	defer b.sorter.release()
	b.sorter.captureListed(b.unapplied)
	raise(&b.ingestCaptured, through)
	r := b.sorter.sorted()
	path := filepath.Join(b.dir.seg, fmt.Sprintf("ingest-%020d.sst", through))
	n, err := b.ingestRecords(b.db, r, path)
	if err != nil {
		return fmt.Errorf("write the changes of epochs through %d into the database: %w", through, err)
	}
	b.markApplied(through)
	clear(b.unapplied)
	b.unapplied = b.unapplied[:0]
	b.opts.Logger.Debug("pebblestate: ingested", "operator", b.info.Operator, "subtask", b.info.Subtask, "entries", n, "took", time.Since(start))
	return nil
}

// ingestRecords writes sorted records as a table at path and ingests it
// into db; it returns how many entries the table held. No table is written
// without entries.
func (b *backend) ingestRecords(db *pebble.DB, r records, path string) (int, error) {
	if len(r.entries) == 0 {
		return 0, nil
	}
	return b.ingestTable(db, path, func(add func(op byte, k, v []byte) error) (int, error) {
		return len(r.entries), r.each(add)
	})
}
