package engine

import "github.com/onceflow/onceflow/checkpoint"

// KeyGroup maps an encoded key to its key group in [0, maxParallelism). The
// hash is fixed forever: checkpoints are partitioned by it.
func KeyGroup(key []byte, maxParallelism int) int {
	// FNV-1a 64 with a murmur3 finalizer for avalanche on short keys.
	h := uint64(14695981039346656037)
	for _, c := range key {
		h ^= uint64(c)
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return int(h % uint64(maxParallelism))
}

// KeyGroupRange returns the key groups owned by subtask i of p, as contiguous
// ranges so that rescaling moves whole ranges.
func KeyGroupRange(maxParallelism, p, i int) checkpoint.KeyGroupRange {
	return checkpoint.KeyGroupRange{
		Start: (i*maxParallelism + p - 1) / p,
		End:   ((i+1)*maxParallelism + p - 1) / p,
	}
}

// subtaskForKeyGroup is the inverse of KeyGroupRange.
func subtaskForKeyGroup(maxParallelism, p, kg int) int {
	return kg * p / maxParallelism
}
