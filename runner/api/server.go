// Package api serves a runner.Runner over HTTP: the REST API (JSON), the
// Prometheus metrics and the web page of `onceflow serve`.
package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/onceflow/onceflow/runner"
)

// Config bounds what clients can make the server do. Zero fields take the
// documented defaults.
type Config struct {
	// Token, when set, must be sent by every client as
	// "Authorization: Bearer <token>" (the web page also takes ?token=).
	// Required when listening on anything but loopback (see CheckBind).
	Token string
	// MaxBodyBytes bounds JSON request bodies. Default 1 MiB.
	MaxBodyBytes int64
	// MaxUploadBytes bounds uploaded binaries. Default 1 GiB.
	MaxUploadBytes int64
	// MaxWait bounds how long a checkpoint, savepoint or stop request waits
	// (?timeout=, default 5m). Default 10m.
	MaxWait time.Duration
	Logger  *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.MaxUploadBytes <= 0 {
		c.MaxUploadBytes = 1 << 30
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 10 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// CheckBind refuses to serve on a non-loopback address without a token: the
// API starts arbitrary binaries on the runner's machine.
func CheckBind(addr, token string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", addr, err)
	}
	if isLoopback(host) || token != "" {
		return nil
	}
	return fmt.Errorf("refusing to listen on %s without a token: anyone who reaches it could run programs on this machine; set --token (or ONCEFLOW_TOKEN), or listen on 127.0.0.1", addr)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// NewServer returns an HTTP server for r with bounded timeouts.
func NewServer(r *runner.Runner, cfg Config) *http.Server {
	cfg = cfg.withDefaults()
	return &http.Server{
		Handler:           Handler(r, cfg),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       10 * time.Minute, // uploads of large binaries
		WriteTimeout:      cfg.MaxWait + time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
}

// Handler returns the routes of the API.
func Handler(r *runner.Runner, cfg Config) http.Handler {
	cfg = cfg.withDefaults()
	s := &server{r: r, cfg: cfg, log: cfg.Logger}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health", s.health)
	mux.HandleFunc("POST /v1/binaries", s.upload)
	mux.HandleFunc("GET /v1/jobs", s.listJobs)
	mux.HandleFunc("POST /v1/jobs", s.submit)
	mux.HandleFunc("GET /v1/jobs/{id}", s.getJob)
	mux.HandleFunc("DELETE /v1/jobs/{id}", s.deleteJob)
	mux.HandleFunc("POST /v1/jobs/{id}/checkpoint", s.trigger("checkpoint"))
	mux.HandleFunc("POST /v1/jobs/{id}/savepoint", s.trigger("savepoint"))
	mux.HandleFunc("POST /v1/jobs/{id}/stop", s.trigger("stop"))
	mux.HandleFunc("POST /v1/jobs/{id}/cancel", s.cancel)
	mux.HandleFunc("POST /v1/jobs/{id}/restore", s.restore)
	mux.HandleFunc("GET /v1/jobs/{id}/checkpoints", s.points)
	mux.HandleFunc("GET /v1/savepoints", s.savepoints)
	mux.HandleFunc("DELETE /v1/savepoints/{path...}", s.deleteSavepoint)
	mux.HandleFunc("GET /metrics", s.metrics)
	mux.HandleFunc("GET /{$}", s.page)
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no endpoint %s %s (see the README's REST API section)", req.Method, req.URL.Path))
	})
	return s.authenticate(mux)
}

type server struct {
	r   *runner.Runner
	cfg Config
	log *slog.Logger
}

// authenticate checks the token in constant time. Hashing both sides first
// makes the comparison independent of the lengths too.
func (s *server) authenticate(next http.Handler) http.Handler {
	if s.cfg.Token == "" {
		return next
	}
	want := sha256.Sum256([]byte(s.cfg.Token))
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/v1/health" {
			next.ServeHTTP(w, req)
			return
		}
		got, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
		if !ok && req.Method == http.MethodGet && req.URL.Path == "/" {
			got, ok = req.URL.Query().Get("token"), true
		}
		sum := sha256.Sum256([]byte(got))
		if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="onceflow"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong token: send Authorization: Bearer <token>")
			return
		}
		next.ServeHTTP(w, req)
	})
}

// statusOf maps the runner's errors to HTTP status codes.
func statusOf(err error) int {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, runner.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, runner.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, runner.ErrConflict), errors.Is(err, runner.ErrJob):
		return http.StatusConflict
	case errors.Is(err, runner.ErrTimeout):
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}
