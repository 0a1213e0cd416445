package chaos

import (
	"context"
	"testing"
	"time"

	"github.com/onceflow/onceflow/checkpoint/fsstore"
	"github.com/onceflow/onceflow/connectors/file"
	"github.com/onceflow/onceflow/engine"
	"github.com/onceflow/onceflow/internal/testjob"
)

func TestSmoke(t *testing.T) {
	dir := t.TempDir()
	store, err := fsstore.Open(dir + "/ckpt")
	if err != nil {
		t.Fatal(err)
	}
	o := testjob.Options{Name: "smoke", Records: 20000, Keys: 100, Parallelism: 2, OutDir: dir + "/out"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := engine.Run(ctx, testjob.Build(o), engine.Config{Store: store, CheckpointInterval: 20 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	lines, err := file.ReadCommitted(o.OutDir, "out")
	if err != nil {
		t.Fatal(err)
	}
	if err := testjob.Verify(lines, o.Records, o.Keys); err != nil {
		t.Fatal(err)
	}
}
