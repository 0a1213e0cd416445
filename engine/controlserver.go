package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

// ControlSocketEnv names the unix socket on which a job binary started by the
// onceflow runner serves its Control (see ServeControl).
const ControlSocketEnv = "ONCEFLOW_CONTROL_SOCKET"

// ServeControl serves c over HTTP on ln until ctx is done:
//
//	GET  /v1/status      Status
//	POST /v1/checkpoint  CheckpointInfo of the next completed checkpoint
//	POST /v1/savepoint   CheckpointInfo of the savepoint
//	POST /v1/stop        CheckpointInfo of the savepoint that stopped the job
//
// Errors come back as {"error": "..."} with status 409 (the job cannot do it
// now) or 504 (it did not finish in time).
func ServeControl(ctx context.Context, ln net.Listener, c *Control) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, c.Status())
	})
	for path, act := range map[string]func(context.Context) (CheckpointInfo, error){
		"/v1/checkpoint": c.Checkpoint, "/v1/savepoint": c.Savepoint, "/v1/stop": c.StopWithSavepoint,
	} {
		mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
			info, err := act(r.Context())
			switch {
			case err == nil:
				writeJSON(w, http.StatusOK, info)
			case errors.Is(err, context.DeadlineExceeded):
				writeJSON(w, http.StatusGatewayTimeout, map[string]string{"error": err.Error()})
			default:
				writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
			}
		})
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("control server: %w", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// listenControl opens the control socket named by ControlSocketEnv, if any.
func listenControl() (net.Listener, error) {
	path := os.Getenv(ControlSocketEnv)
	if path == "" {
		return nil, nil
	}
	_ = os.Remove(path) // a socket left by a killed predecessor
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket %s=%s: %w", ControlSocketEnv, path, err)
	}
	return ln, nil
}
