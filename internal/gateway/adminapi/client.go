package adminapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// TokenHeader carries the admin token where Authorization cannot: the
// Kubernetes API server's pod proxy, through which a rollout reaches each
// gateway pod, authenticates the caller by that header and drops it.
const TokenHeader = "X-Aideploy-Admin-Token"

// Client talks to one gateway's admin listener.
type Client struct {
	BaseURL string       // e.g. http://127.0.0.1:8081
	Token   string       // bearer token
	HTTP    *http.Client // nil means a client with a 2-minute timeout (drains can be long)
	// TokenInHeader sends Token in TokenHeader instead of Authorization.
	TokenInHeader bool
}

// Pools lists every pool.
func (c *Client) Pools(ctx context.Context) ([]Pool, error) {
	var out []Pool
	return out, c.do(ctx, http.MethodGet, PathPools, nil, &out)
}

// Pool returns one pool.
func (c *Client) Pool(ctx context.Context, pool string) (Pool, error) {
	var out Pool
	return out, c.do(ctx, http.MethodGet, expand(PathPool, pool), nil, &out)
}

// ReplaceTargets swaps a pool's targets atomically once the new ones are healthy.
func (c *Client) ReplaceTargets(ctx context.Context, pool string, req ReplaceTargets) (Pool, error) {
	var out Pool
	return out, c.do(ctx, http.MethodPut, expand(PathTargets, pool), req, &out)
}

// SetWeights changes target weights.
func (c *Client) SetWeights(ctx context.Context, pool string, req SetWeights) (Pool, error) {
	var out Pool
	return out, c.do(ctx, http.MethodPut, expand(PathWeights, pool), req, &out)
}

// Drain stops new traffic to a target and waits for its in-flight requests.
func (c *Client) Drain(ctx context.Context, pool string, req Drain) (DrainResult, error) {
	var out DrainResult
	return out, c.do(ctx, http.MethodPost, expand(PathDrain, pool), req, &out)
}

// Stats returns traffic figures of a pool over the last window.
func (c *Client) Stats(ctx context.Context, pool string, window time.Duration) (Stats, error) {
	var out Stats
	p := expand(PathStats, pool) + "?window=" + url.QueryEscape(window.String())
	return out, c.do(ctx, http.MethodGet, p, nil, &out)
}

// SetSplit shares a pool's requests between its groups (a canary); a Split
// with no Percent clears it, so every target serves by its weight again.
func (c *Client) SetSplit(ctx context.Context, pool string, req Split) (Pool, error) {
	var out Pool
	return out, c.do(ctx, http.MethodPut, expand(PathSplit, pool), req, &out)
}

// Split returns a pool's split; its Percent is empty when none is set.
func (c *Client) Split(ctx context.Context, pool string) (Split, error) {
	var out Split
	return out, c.do(ctx, http.MethodGet, expand(PathSplit, pool), nil, &out)
}

// SetShadow mirrors a share of a pool's requests to a group; Percent 0 stops mirroring.
func (c *Client) SetShadow(ctx context.Context, pool string, req Shadow) (Pool, error) {
	var out Pool
	return out, c.do(ctx, http.MethodPut, expand(PathShadow, pool), req, &out)
}

// Shadow returns a pool's mirroring; its Percent is 0 when none is set.
func (c *Client) Shadow(ctx context.Context, pool string) (Shadow, error) {
	var out Shadow
	return out, c.do(ctx, http.MethodGet, expand(PathShadow, pool), nil, &out)
}

func expand(path, pool string) string {
	return strings.Replace(path, "{pool}", url.PathEscape(pool), 1)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, body)
	if err != nil {
		return err
	}
	switch {
	case c.Token != "" && c.TokenInHeader:
		req.Header.Set(TokenHeader, c.Token)
	case c.Token != "":
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 2 * time.Minute}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("gateway admin API at %s: %w (is `aideploy gateway serve` running?)", c.BaseURL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e Error
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return &StatusError{Code: resp.StatusCode, Msg: e.Error}
		}
		return &StatusError{Code: resp.StatusCode, Msg: strings.TrimSpace(string(data))}
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}

// StatusError is a non-2xx answer of the admin API.
type StatusError struct {
	Code int
	Msg  string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("gateway admin API: %d %s: %s", e.Code, http.StatusText(e.Code), e.Msg)
}
