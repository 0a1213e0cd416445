package chaos

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/onceflow/onceflow/checkpoint"
)

type restartCounter struct{ n atomic.Int64 }

func (r *restartCounter) CheckpointCompleted(*checkpoint.Manifest, time.Duration) {}
func (r *restartCounter) CheckpointAborted(uint64, string)                        {}
func (r *restartCounter) Restarting(int, error, time.Duration)                    { r.n.Add(1) }

func sortStrings(s []string) { slices.Sort(s) }
