package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/onceflow/onceflow/engine"
)

// controlClient talks to a job process's control server (engine.ServeControl)
// over its unix socket.
type controlClient struct {
	socket string
	hc     *http.Client
}

func newControlClient(socket string) *controlClient {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns:    2,
		IdleConnTimeout: 30 * time.Second,
	}
	return &controlClient{socket: socket, hc: &http.Client{Transport: tr}}
}

func (c *controlClient) close() { c.hc.CloseIdleConnections() }

func (c *controlClient) status(ctx context.Context) (engine.Status, error) {
	var st engine.Status
	err := c.do(ctx, http.MethodGet, "/v1/status", &st)
	return st, err
}

// act is "checkpoint", "savepoint" or "stop".
func (c *controlClient) act(ctx context.Context, act string) (engine.CheckpointInfo, error) {
	var info engine.CheckpointInfo
	err := c.do(ctx, http.MethodPost, "/v1/"+act, &info)
	return info, err
}

// jobError is an error the job process returned: it understood the request
// and refused it (409) or ran out of time (504).
type jobError struct {
	status int
	msg    string
}

func (e *jobError) Error() string { return e.msg }

func (c *controlClient) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://job"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("job control socket %s: %w", c.socket, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("job control %s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return &jobError{status: resp.StatusCode, msg: e.Error}
		}
		return &jobError{status: resp.StatusCode, msg: fmt.Sprintf("job control %s %s: HTTP %d", method, path, resp.StatusCode)}
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("job control %s %s: decode response: %w", method, path, err)
	}
	return nil
}
