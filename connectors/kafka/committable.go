package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// committable is what a checkpoint stores of a pre-committed transaction:
// enough for any process to commit it with a raw EndTxn, and to tell it
// apart from a later transaction on the same transactional id.
type committable struct {
	TxnID      string
	ProducerID int64
	Epoch      int16
	// First names the transaction's first acknowledged record. (producer
	// id, epoch) identifies the id's producer session, not the
	// transaction: before KIP-890 every transaction of one client shares
	// them. The offset of a record the transaction wrote is unique, and a
	// partition leader reports it as the producer's current transaction
	// start offset while that transaction is open. Zero (Topic "") in
	// committables written before this field existed (version 1); those
	// are committed without the check, as they were then.
	First recordPos
}

// recordPos is the position of one record.
type recordPos struct {
	Topic     string
	Partition int32
	Offset    int64
}

func (p recordPos) known() bool { return p.Topic != "" }

// Encoding versions. Version 1: producer id, epoch, transactional id.
// Version 2 appends the first record's topic, partition and offset. A
// committable without a first record is still written as version 1, so
// that decoding and encoding again gives the same bytes.
const (
	committableV1 = 1
	committableV2 = 2
)

func (c committable) encode() []byte {
	v := byte(committableV1)
	if c.First.known() {
		v = committableV2
	}
	b := []byte{v}
	b = binary.AppendVarint(b, c.ProducerID)
	b = binary.AppendVarint(b, int64(c.Epoch))
	b = binary.AppendUvarint(b, uint64(len(c.TxnID)))
	b = append(b, c.TxnID...)
	if v == committableV2 {
		b = binary.AppendUvarint(b, uint64(len(c.First.Topic)))
		b = append(b, c.First.Topic...)
		b = binary.AppendVarint(b, int64(c.First.Partition))
		b = binary.AppendVarint(b, c.First.Offset)
	}
	return b
}

var errBadCommittable = errors.New("malformed kafka committable")

func decodeCommittable(b []byte) (committable, error) {
	if len(b) == 0 || (b[0] != committableV1 && b[0] != committableV2) {
		return committable{}, fmt.Errorf("%w: unknown version", errBadCommittable)
	}
	v := b[0]
	d := decoder{b: b[1:]}
	var c committable
	c.ProducerID = d.varint()
	epoch := d.varint()
	if d.err == nil && (epoch < -1<<15 || epoch >= 1<<15) {
		return committable{}, fmt.Errorf("%w: epoch", errBadCommittable)
	}
	c.Epoch = int16(epoch)
	c.TxnID = d.str()
	if v == committableV2 {
		c.First.Topic = d.str()
		p := d.varint()
		if d.err == nil && (p < 0 || p >= 1<<31) {
			return committable{}, fmt.Errorf("%w: partition", errBadCommittable)
		}
		c.First.Partition = int32(p)
		c.First.Offset = d.varint()
		if d.err == nil && c.First.Offset < 0 {
			return committable{}, fmt.Errorf("%w: offset", errBadCommittable)
		}
	}
	if d.err != nil {
		return committable{}, d.err
	}
	if len(d.b) != 0 {
		return committable{}, fmt.Errorf("%w: %d trailing bytes", errBadCommittable, len(d.b))
	}
	return c, nil
}

// decoder reads varints and non-empty length-prefixed strings, keeping the
// first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%w: truncated number", errBadCommittable)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string {
	if d.err != nil {
		return ""
	}
	l, n := binary.Uvarint(d.b)
	if n <= 0 || l == 0 || l > uint64(len(d.b)-n) {
		d.err = fmt.Errorf("%w: string", errBadCommittable)
		return ""
	}
	s := string(d.b[n : n+int(l)])
	d.b = d.b[n+int(l):]
	return s
}

func (c committable) String() string {
	if !c.First.known() {
		return fmt.Sprintf("transaction %q (producer id %d, epoch %d)", c.TxnID, c.ProducerID, c.Epoch)
	}
	return fmt.Sprintf("transaction %q (producer id %d, epoch %d, first record %s/%d@%d)",
		c.TxnID, c.ProducerID, c.Epoch, c.First.Topic, c.First.Partition, c.First.Offset)
}
