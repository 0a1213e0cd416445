package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/onceflow/onceflow/checkpoint"
)

// configEnv maps the engine settings a submit may set (Job.Config) to their
// variables. The runner owns the others: the checkpoint store, the restore
// point, the parallelism and the control socket.
var configEnv = map[string]string{
	"checkpoint-interval":           "ONCEFLOW_CHECKPOINT_INTERVAL",
	"checkpoint-timeout":            "ONCEFLOW_CHECKPOINT_TIMEOUT",
	"checkpoints-retained":          "ONCEFLOW_CHECKPOINTS_RETAINED",
	"tolerable-checkpoint-failures": "ONCEFLOW_TOLERABLE_CHECKPOINT_FAILURES",
	"restart":                       "ONCEFLOW_RESTART",
	"allow-non-restored-state":      "ONCEFLOW_ALLOW_NON_RESTORED_STATE",
}

// engineVars are every variable engine.ParseFlags reads, and the socket.
var engineVars = func() map[string]bool {
	m := map[string]bool{"ONCEFLOW_CHECKPOINT_STORE": true, "ONCEFLOW_RESTORE": true,
		"ONCEFLOW_PARALLELISM": true, "ONCEFLOW_CONTROL_SOCKET": true}
	for _, v := range configEnv {
		m[v] = true
	}
	return m
}()

// reservedFlags are set by the runner; a job's arguments must not override
// them (an explicit flag wins over the runner's environment).
var reservedFlags = []string{"checkpoint-store", "restore", "parallelism"}

func validateConfig(cfg map[string]string) error {
	for k, v := range cfg {
		if _, ok := configEnv[k]; !ok {
			keys := make([]string, 0, len(configEnv))
			for k := range configEnv {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			return fmt.Errorf("%w: config %q: unknown setting (known: %s; the runner sets the store, restore point and parallelism)", ErrInvalid, k, strings.Join(keys, ", "))
		}
		var err error
		switch k {
		case "checkpoint-interval", "checkpoint-timeout":
			var d time.Duration
			if d, err = time.ParseDuration(v); err == nil && d < 0 {
				err = errors.New("negative")
			}
		case "checkpoints-retained", "tolerable-checkpoint-failures":
			var n int
			if n, err = strconv.Atoi(v); err == nil && n < 0 {
				err = errors.New("negative")
			}
		case "allow-non-restored-state":
			_, err = strconv.ParseBool(v)
		}
		if err != nil {
			return fmt.Errorf("%w: config %s=%q: %v", ErrInvalid, k, v, err)
		}
	}
	return nil
}

func validateArgs(args []string) error {
	for _, a := range args {
		if a == "--" {
			return nil // the rest are positional
		}
		name, ok := strings.CutPrefix(a, "-")
		if !ok {
			continue
		}
		name = strings.TrimPrefix(name, "-")
		name, _, _ = strings.Cut(name, "=")
		if slices.Contains(reservedFlags, name) {
			return fmt.Errorf("%w: argument %q: the runner sets -%s (use the submit's parallelism or from fields)", ErrInvalid, a, name)
		}
	}
	return nil
}

func validateEnv(env map[string]string) error {
	for k := range env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("%w: env %q: not a variable name", ErrInvalid, k)
		}
		if engineVars[k] {
			return fmt.Errorf("%w: env %s: the runner sets the engine's variables; use config", ErrInvalid, k)
		}
	}
	return nil
}

// resolveBinary returns the absolute path of the executable a submit names.
func (r *Runner) resolveBinary(req *SubmitRequest) (string, error) {
	switch {
	case req.Binary != "" && req.Path != "":
		return "", fmt.Errorf("%w: set binary (an uploaded binary) or path (a file on the runner's machine), not both", ErrInvalid)
	case req.Binary != "":
		hexsum, ok := strings.CutPrefix(req.Binary, "sha256:")
		if _, err := hex.DecodeString(hexsum); !ok || err != nil || len(hexsum) != 64 {
			return "", fmt.Errorf("%w: binary %q: want sha256:<64 hex digits> as returned by POST /v1/binaries", ErrInvalid, req.Binary)
		}
		p := filepath.Join(r.cfg.DataDir, "bin", strings.ToLower(hexsum))
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: binary %s was not uploaded (POST /v1/binaries first)", ErrInvalid, req.Binary)
		}
		return p, nil
	case req.Path != "":
		if !filepath.IsAbs(req.Path) {
			return "", fmt.Errorf("%w: path %q: must be absolute", ErrInvalid, req.Path)
		}
		fi, err := os.Stat(req.Path)
		if err != nil {
			return "", fmt.Errorf("%w: path %s: no such binary on the runner's machine: %v", ErrInvalid, req.Path, err)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return "", fmt.Errorf("%w: path %s: not an executable file", ErrInvalid, req.Path)
		}
		return filepath.Clean(req.Path), nil
	}
	return "", fmt.Errorf("%w: no binary: set binary (uploaded) or path", ErrInvalid)
}

// UploadBinary stores an executable sent by a client and returns its name
// for SubmitRequest.Binary ("sha256:<hex>"). Only ELF executables are kept.
func (r *Runner) UploadBinary(body io.Reader) (string, int64, error) {
	tmp, err := os.CreateTemp(filepath.Join(r.cfg.DataDir, "bin"), ".upload-*")
	if err != nil {
		return "", 0, fmt.Errorf("store binary: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), body)
	if err != nil {
		return "", n, fmt.Errorf("receive binary: %w", err)
	}
	head := make([]byte, 4)
	if _, err := tmp.ReadAt(head, 0); err != nil || string(head) != "\x7fELF" {
		return "", n, fmt.Errorf("%w: the upload (%d bytes) is not an ELF executable", ErrInvalid, n)
	}
	if err := tmp.Chmod(0o755); err != nil {
		return "", n, fmt.Errorf("store binary: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return "", n, fmt.Errorf("store binary: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if err := os.Rename(tmp.Name(), filepath.Join(r.cfg.DataDir, "bin", sum)); err != nil {
		return "", n, fmt.Errorf("store binary: %w", err)
	}
	return "sha256:" + sum, n, syncDir(filepath.Join(r.cfg.DataDir, "bin"))
}

// Submit validates req, records the job durably and starts it.
func (r *Runner) Submit(ctx context.Context, req SubmitRequest) (*JobView, error) {
	bin, err := r.resolveBinary(&req)
	if err != nil {
		return nil, err
	}
	if req.Parallelism < 0 || req.Parallelism > 4096 {
		return nil, fmt.Errorf("%w: parallelism %d: must be in 0..4096 (0 = the job's own)", ErrInvalid, req.Parallelism)
	}
	if len(req.Name) > 100 || strings.ContainsAny(req.Name, "\x00\n\r\t") {
		return nil, fmt.Errorf("%w: name %q: at most 100 printable characters", ErrInvalid, req.Name)
	}
	if len(req.Args) > 1000 {
		return nil, fmt.Errorf("%w: %d arguments: at most 1000", ErrInvalid, len(req.Args))
	}
	if err := validateArgs(req.Args); err != nil {
		return nil, err
	}
	if err := validateConfig(req.Config); err != nil {
		return nil, err
	}
	if err := validateEnv(req.Env); err != nil {
		return nil, err
	}
	if req.Restart == "" {
		req.Restart = DefaultRestart
	}
	if _, err := parseRestartPolicy(req.Restart); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	var from parsedPoint
	if req.From != "" {
		if from, err = r.checkPoint(ctx, req.From); err != nil {
			return nil, err
		}
	}
	name := req.Name
	if name == "" {
		name = filepath.Base(bin)
		if req.Binary != "" {
			name = "job"
		}
	}

	// The id is spent durably before its store is used: an id is never
	// reused, so a new job's store never holds another job's checkpoints
	// (which "latest" would restore).
	r.mu.Lock()
	id := "j" + strconv.Itoa(r.tbl.NextID)
	r.tbl.NextID++
	err = r.saveLocked()
	r.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("record job id: %w", err)
	}
	store, err := jobStoreURL(r.cfg.CheckpointRoot, id)
	if err != nil {
		return nil, err
	}
	j := &Job{ID: id, Name: name, Binary: bin, Args: req.Args, Parallelism: req.Parallelism,
		Config: req.Config, Env: req.Env, Restart: req.Restart, Store: store,
		State: StateStarting, SubmittedAt: time.Now().UTC(), Restore: "latest"}
	if req.From != "" {
		// Copy the restore point into the new job's store: the job then
		// owns everything it restores from.
		if err := r.copyInto(ctx, j, from); err != nil {
			return nil, err
		}
		j.Restore, j.RestoreFloor = from.manifest, from.id
		j.EngineJob = from.engineJob
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// Deleting the last job of an uploaded binary removes it, under r.mu:
	// check again that it is there now that the job will hold it.
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%w: binary %s: removed with the last job that ran it; upload it again: %v", ErrInvalid, bin, err)
	}
	r.tbl.Jobs = append(r.tbl.Jobs, j)
	e := &entry{job: j, wake: make(chan struct{}, 1)}
	r.jobs[id] = e
	if err := r.saveLocked(); err != nil {
		return nil, fmt.Errorf("record job: %w", err)
	}
	r.log.Info("job submitted", "job", id, "name", name, "binary", bin, "from", req.From, "parallelism", req.Parallelism)
	r.superviseLocked(e)
	return r.viewLocked(e), nil
}

// checkPoint validates a restore point path and that it exists.
func (r *Runner) checkPoint(ctx context.Context, path string) (parsedPoint, error) {
	pp, err := parsePointPath(path)
	if err != nil {
		return pp, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	src, err := r.job(pp.job)
	if err != nil {
		return pp, fmt.Errorf("%w: restore path %q: job %s: no such job", ErrInvalid, path, pp.job)
	}
	s, err := r.storeFor(ctx, &src)
	if err != nil {
		return pp, err
	}
	if _, err := checkpoint.ReadManifest(ctx, s, pp.manifest); err != nil {
		if errors.Is(err, checkpoint.ErrNotFound) {
			return pp, fmt.Errorf("%w: restore path %q: no such %s in the store of job %s", ErrNotFound, path, pp.kind, pp.job)
		}
		return pp, fmt.Errorf("restore path %q: %w", path, err)
	}
	return pp, nil
}

// copyInto copies restore point pp (of any job) into j's store, unless it is
// j's own.
func (r *Runner) copyInto(ctx context.Context, j *Job, pp parsedPoint) error {
	if pp.job == j.ID {
		return nil
	}
	src, err := r.job(pp.job)
	if err != nil {
		return err
	}
	from, err := r.storeFor(ctx, &src)
	if err != nil {
		return err
	}
	to, err := r.storeFor(ctx, j)
	if err != nil {
		return err
	}
	if err := copyPoint(ctx, from, to, pp.manifest); err != nil {
		return fmt.Errorf("job %s: %w", j.ID, err)
	}
	return nil
}

// job returns a copy of job id.
func (r *Runner) job(id string) (Job, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.jobs[id]
	if !ok {
		return Job{}, fmt.Errorf("%w: job %q", ErrNotFound, id)
	}
	return *e.job, nil
}
