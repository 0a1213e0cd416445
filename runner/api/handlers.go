package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/onceflow/onceflow/runner"
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Error is the body of every error response.
type Error struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, Error{Error: msg})
}

func (s *server) fail(w http.ResponseWriter, req *http.Request, err error) {
	status := statusOf(err)
	if status >= 500 {
		s.log.Error("request failed", "method", req.Method, "path", req.URL.Path, "err", err)
	}
	writeError(w, status, err.Error())
}

// decode reads a bounded JSON body into v, strictly: unknown fields,
// trailing data and wrong types are errors that say where.
func (s *server) decode(w http.ResponseWriter, req *http.Request, v any) error {
	if ct := req.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return fmt.Errorf("%w: Content-Type %q: want application/json", runner.ErrInvalid, ct)
		}
	}
	body := http.MaxBytesReader(w, req.Body, s.cfg.MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &mbe):
			return fmt.Errorf("request body larger than %d bytes: %w", s.cfg.MaxBodyBytes, err)
		case errors.Is(err, io.EOF):
			return fmt.Errorf("%w: empty request body: want a JSON object", runner.ErrInvalid)
		case errors.As(err, &se):
			return fmt.Errorf("%w: malformed JSON at byte %d: %v", runner.ErrInvalid, se.Offset, err)
		case errors.As(err, &te):
			return fmt.Errorf("%w: field %q: got JSON %s, want %s", runner.ErrInvalid, te.Field, te.Value, te.Type)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return fmt.Errorf("%w: truncated JSON", runner.ErrInvalid)
		}
		return fmt.Errorf("%w: %v", runner.ErrInvalid, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: data after the JSON object", runner.ErrInvalid)
	}
	return nil
}

func (s *server) health(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

// UploadResult is the body of a POST /v1/binaries response.
type UploadResult struct {
	Binary string `json:"binary"`
	Size   int64  `json:"size"`
}

func (s *server) upload(w http.ResponseWriter, req *http.Request) {
	body := http.MaxBytesReader(w, req.Body, s.cfg.MaxUploadBytes)
	name, n, err := s.r.UploadBinary(body)
	if err != nil {
		s.fail(w, req, err)
		return
	}
	writeJSON(w, http.StatusCreated, UploadResult{Binary: name, Size: n})
}

func (s *server) listJobs(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.r.Jobs())
}

func (s *server) submit(w http.ResponseWriter, req *http.Request) {
	var sr runner.SubmitRequest
	if err := s.decode(w, req, &sr); err != nil {
		s.fail(w, req, err)
		return
	}
	v, err := s.r.Submit(req.Context(), sr)
	if err != nil {
		s.fail(w, req, err)
		return
	}
	writeJSON(w, http.StatusCreated, v)
}

func (s *server) getJob(w http.ResponseWriter, req *http.Request) {
	v, err := s.r.Get(req.PathValue("id"))
	if err != nil {
		s.fail(w, req, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// wait returns the request's context bounded by ?timeout= (default 5m, at
// most MaxWait).
func (s *server) wait(req *http.Request) (context.Context, context.CancelFunc, error) {
	d := min(5*time.Minute, s.cfg.MaxWait)
	if t := req.URL.Query().Get("timeout"); t != "" {
		var err error
		if d, err = time.ParseDuration(t); err != nil || d <= 0 || d > s.cfg.MaxWait {
			return nil, nil, fmt.Errorf("%w: timeout %q: want a duration in (0, %s]", runner.ErrInvalid, t, s.cfg.MaxWait)
		}
	}
	ctx, cancel := context.WithTimeout(req.Context(), d)
	return ctx, cancel, nil
}

func (s *server) trigger(act string) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		ctx, cancel, err := s.wait(req)
		if err != nil {
			s.fail(w, req, err)
			return
		}
		defer cancel()
		res, err := s.r.Trigger(ctx, req.PathValue("id"), act)
		if err != nil {
			s.fail(w, req, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	}
}

func (s *server) cancel(w http.ResponseWriter, req *http.Request) {
	v, err := s.r.Cancel(req.PathValue("id"))
	if err != nil {
		s.fail(w, req, err)
		return
	}
	writeJSON(w, http.StatusAccepted, v)
}

func (s *server) restore(w http.ResponseWriter, req *http.Request) {
	var rr runner.RestoreRequest
	if err := s.decode(w, req, &rr); err != nil {
		s.fail(w, req, err)
		return
	}
	v, err := s.r.Restore(req.Context(), req.PathValue("id"), rr)
	if err != nil {
		s.fail(w, req, err)
		return
	}
	writeJSON(w, http.StatusAccepted, v)
}

func (s *server) points(w http.ResponseWriter, req *http.Request) {
	pts, err := s.r.Points(req.Context(), req.PathValue("id"))
	if err != nil {
		s.fail(w, req, err)
		return
	}
	writeJSON(w, http.StatusOK, pts)
}

func (s *server) savepoints(w http.ResponseWriter, req *http.Request) {
	pts, err := s.r.Savepoints(req.Context())
	if err != nil {
		s.fail(w, req, err)
		return
	}
	writeJSON(w, http.StatusOK, pts)
}

func (s *server) deleteJob(w http.ResponseWriter, req *http.Request) {
	if err := s.r.Delete(req.Context(), req.PathValue("id")); err != nil {
		s.fail(w, req, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) deleteSavepoint(w http.ResponseWriter, req *http.Request) {
	path := strings.TrimPrefix(req.PathValue("path"), "/")
	if err := s.r.DeleteSavepoint(req.Context(), path); err != nil {
		s.fail(w, req, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) metrics(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	if err := s.r.WriteMetrics(w); err != nil {
		s.log.Warn("write metrics", "err", err)
	}
}
