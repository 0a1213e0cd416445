// Package kafka connects Onceflow jobs to Kafka: a replayable source whose
// positions live in checkpoints, and a sink with a choice of delivery
// guarantee up to exactly once through Kafka transactions. It is the only
// package of the project that imports franz-go (outside tests and the
// embedded development broker in devbroker).
//
// # Source
//
// The partitions of the configured topics are spread over the source
// subtasks by a fixed function of (topic, partition, parallelism), so every
// subtask knows its partitions without coordination and a restore at another
// parallelism moves whole partitions. A checkpoint stores the next offset of
// every partition; a restored reader seeks there and nothing else. Consumer
// group offsets are never read back for correctness: they are written after
// a checkpoint completes only when asked (for lag monitoring), and read only
// to choose where a job without any checkpoint starts.
//
// # Exactly-once sink: the protocol at the interface
//
// Each sink subtask owns a bounded pool of transactional ids
// "<prefix>-<operator>-<subtask>-<slot>". Records go into a transaction on
// one id. On barrier n (StartPreCommit) the sink closes that transaction to
// new records, which open a transaction on another id, on that id's own
// client; meanwhile, off the record path (engine.AsyncPreCommitter), it
// flushes the closed one, waits for every produce result and returns the
// committable (transactional id, producer id, epoch as returned by the
// produces, and the position of the transaction's first record). When checkpoint n completes the transaction is committed, with
// the sink's own EndTxn for the committable's producer id and epoch (see
// txnWriter.Commit for why not the client's EndTransaction). An
// id is reused only after a later checkpoint has completed whose snapshot
// was taken after the commit, so no restore point can still name the old
// transaction when a new one runs on the same id (which, on brokers without
// KIP-890 epoch bumps, had the same producer epoch while the sink kept one
// client per id; it now starts a new producer for every transaction there,
// see txnWriter.settle).
//
// Recover, at the start of every attempt, commits the restored committables
// with a raw EndTxn(commit) through the client, never InitProducerID (which
// would abort them). Because an explicitly restored older savepoint may name
// an id that was reused since, it first asks the leader of the first
// record's partition whether the producer's open transaction starts at that
// record, and sends the EndTxn only if so or if no transaction is open at the
// committable's producer id and epoch (see txncheck.go); a later transaction
// open at the same epoch (brokers without KIP-890) means the restored one was
// committed. "Already committed" is success; a transaction the broker
// aborted (expired, or fenced by a new producer of its id) stops the job
// with an error that says so: the checkpoint's output would be lost. When
// the coordinator answers "fenced" it may also mean a later epoch after a
// commit (KIP-890 bumps it at every transaction), so the first record's
// partition is read with read_committed to tell the two apart (txnlog.go). Then it lists the open transactions of
// the prefix and aborts those this subtask owns (the ids of old subtasks j
// with j mod parallelism equal to its index), so that read_committed
// consumers are not held back by an earlier incarnation's leftovers.
package kafka
