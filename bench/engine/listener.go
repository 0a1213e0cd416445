package main

import (
	"io"
	"log/slog"
	"time"

	"github.com/onceflow/onceflow/checkpoint"
)

// listener counts completed checkpoints (the final one included).
type listener struct{ completed int }

func (l *listener) CheckpointCompleted(*checkpoint.Manifest, time.Duration) { l.completed++ }
func (l *listener) CheckpointAborted(uint64, string)                        {}
func (l *listener) Restarting(int, error, time.Duration)                    {}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
