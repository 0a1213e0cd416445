package pebblestate

import (
	"encoding/binary"
	"hash/fnv"
)

// Key layout in Pebble (every integer big-endian, so that byte order is
// numeric order and the keys of a key-group range are one contiguous span):
//
//	[key group: 2 bytes][state: 4 bytes][len(key): uvarint][key][user key]
//
// The state is named by a hash of its name, not by its registration order:
// every subtask and every incarnation of the job agrees on it without
// coordination, so state written at one parallelism reads the same at
// another, and an operator may register its states in any order. Register
// refuses two names of one backend with the same hash.
//
// The length prefix of the key makes (state, key) a prefix of exactly the
// entries of that key's map state, which Scan iterates.

// stateTag is the on-disk identity of a state name.
func stateTag(name string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return h.Sum32()
}

// appendPrefix appends the prefix shared by every entry of state tag under
// key in key group kg.
func appendPrefix(dst []byte, kg int, tag uint32, key []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(kg))
	dst = binary.BigEndian.AppendUint32(dst, tag)
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	return append(dst, key...)
}

// keyGroupStart is the first key of key group kg; keyGroupStart(kg+1) ends
// it. kg may be the maximum parallelism (one past the last key group), which
// fits 2 bytes since the engine caps it at 32768.
func keyGroupStart(kg int) []byte {
	return binary.BigEndian.AppendUint16(nil, uint16(kg))
}

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil // p is all 0xff: no upper bound
}
