package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// committable is what a checkpoint stores of a pre-committed transaction:
// enough for any process to commit it with a raw EndTxn.
type committable struct {
	TxnID      string
	ProducerID int64
	Epoch      int16
}

// committableVersion prefixes the encoding so that a later layout can be
// told apart from this one.
const committableVersion = 1

func (c committable) encode() []byte {
	b := []byte{committableVersion}
	b = binary.AppendVarint(b, c.ProducerID)
	b = binary.AppendVarint(b, int64(c.Epoch))
	b = binary.AppendUvarint(b, uint64(len(c.TxnID)))
	return append(b, c.TxnID...)
}

var errBadCommittable = errors.New("malformed kafka committable")

func decodeCommittable(b []byte) (committable, error) {
	if len(b) == 0 || b[0] != committableVersion {
		return committable{}, fmt.Errorf("%w: unknown version", errBadCommittable)
	}
	b = b[1:]
	pid, n := binary.Varint(b)
	if n <= 0 {
		return committable{}, fmt.Errorf("%w: producer id", errBadCommittable)
	}
	b = b[n:]
	epoch, n := binary.Varint(b)
	if n <= 0 || epoch < -1<<15 || epoch >= 1<<15 {
		return committable{}, fmt.Errorf("%w: epoch", errBadCommittable)
	}
	b = b[n:]
	l, n := binary.Uvarint(b)
	if n <= 0 || l != uint64(len(b)-n) || l == 0 {
		return committable{}, fmt.Errorf("%w: transactional id", errBadCommittable)
	}
	return committable{TxnID: string(b[n:]), ProducerID: pid, Epoch: int16(epoch)}, nil
}

func (c committable) String() string {
	return fmt.Sprintf("transaction %q (producer id %d, epoch %d)", c.TxnID, c.ProducerID, c.Epoch)
}
