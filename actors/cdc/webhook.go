package cdc

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
)

// maxErrorBody bounds how much of a refusing webhook's answer is kept for
// last_error.
const maxErrorBody = 256

// webhook POSTs rqlite's envelope, one per batch; any 2xx acknowledges it.
type webhook struct {
	url               string
	serviceID, nodeID string
	client            *http.Client
	bytesSent         func(int)
}

func newWebhook(c Config, bytesSent func(int)) (*webhook, error) {
	tlsConf, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	// The per-try timeout is the context's (transmit_timeout).
	return &webhook{url: c.Endpoint, serviceID: c.ServiceID, nodeID: c.NodeID,
		client: &http.Client{Transport: tr}, bytesSent: bytesSent}, nil
}

func (w *webhook) deliver(ctx context.Context, es []entry) (int, error) {
	body := envelope(w.serviceID, w.nodeID, es)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrDelivery, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%w: POST %s: %w", ErrDelivery, redactedEndpoint(w.url), err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // lets the connection be reused
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return 0, fmt.Errorf("%w: POST %s: %s %q", ErrDelivery, redactedEndpoint(w.url), resp.Status, bytes.TrimSpace(msg))
	}
	w.bytesSent(len(body))
	return len(es), nil
}

func (w *webhook) close() { w.client.CloseIdleConnections() }
