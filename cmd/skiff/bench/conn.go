package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// target is one node a worker sends to: a keep-alive connection of the
// worker's own for http:// and https:// bases, or the shared client for
// anything else.
//
// The connection is driven on the worker's goroutine with net/http's own
// response parser. http.Transport hands every request to two goroutines
// of the connection and back, and on a 2-core machine the load generator
// shares with three nodes, that was a third of the CPU of a read run,
// taken from the server it measures.
type target struct {
	base    string // scheme://host[:port][/prefix]
	host    string // host:port to dial, empty when client is used
	prefix  string // the base's path, before each request's
	client  *http.Client
	timeout time.Duration
	// tls is set for https:// bases: the connection is wrapped in TLS
	// (HTTP/1.1, no ALPN) and kept alive like a plain one, so HTTPS and
	// HTTP runs differ only by TLS.
	tls *tls.Config
	// auth is the Authorization header's value ("" for none).
	auth string

	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	stop func() bool // disarms the ctx callback of conn
	buf  bytes.Buffer
}

// access is how targets are reached beyond their URLs: the TLS client
// configuration for https:// and the Basic credentials of every request.
type access struct {
	tls            *tls.Config
	user, password string
}

// basicAuth is the Authorization header value for user and password.
func basicAuth(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// splitBase takes the credentials out of a base URL (user:pass@ wins over
// a's), returning the base without them and the Authorization value.
func splitBase(base string, a access) (string, string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", "", fmt.Errorf("%w: target %q: %w", ErrInvalidConfig, base, err)
	}
	auth := ""
	if a.user != "" {
		auth = basicAuth(a.user, a.password)
	}
	if u.User != nil {
		p, _ := u.User.Password()
		auth = basicAuth(u.User.Username(), p)
		u.User = nil
		base = u.String()
	}
	return base, auth, nil
}

func newTarget(base string, client *http.Client, timeout time.Duration, a access) (*target, error) {
	base, auth, err := splitBase(base, a)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("%w: target %q: %w", ErrInvalidConfig, base, err)
	}
	t := &target{base: base, client: client, timeout: timeout, auth: auth}
	switch u.Scheme {
	case "http", "https":
		t.host, t.prefix = u.Host, strings.TrimRight(u.Path, "/")
		port := "80"
		if u.Scheme == "https" {
			port = "443"
			t.tls = &tls.Config{}
			if a.tls != nil {
				t.tls = a.tls.Clone()
			}
			if t.tls.ServerName == "" {
				t.tls.ServerName = u.Hostname()
			}
		}
		if u.Port() == "" {
			t.host = net.JoinHostPort(u.Hostname(), port)
		}
	}
	return t, nil
}

// send posts body to path and classifies the outcome ("" for success).
func (t *target) send(ctx context.Context, path string, body []byte) string {
	if t.host == "" {
		return send(ctx, t.client, t.base+path, body, t.auth)
	}
	status, resp, err := t.roundTrip(ctx, path, body)
	if err != nil {
		t.close()
		return "transport"
	}
	return classify(status, resp)
}

// connect opens t's connection ahead of the run, so that the run measures
// requests, not every worker's TCP handshake bunched at its start. ctx is
// the whole run's: its cancellation cuts the connection.
func (t *target) connect(ctx context.Context) error {
	if t.host == "" || t.conn != nil {
		return nil
	}
	return t.dial(ctx)
}

func (t *target) dial(ctx context.Context) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", t.host)
	if err != nil {
		return err
	}
	if t.tls != nil {
		tc := tls.Client(c, t.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = c.Close()
			return err
		}
		c = tc
	}
	t.conn, t.br, t.bw = c, bufio.NewReaderSize(c, 16<<10), bufio.NewWriterSize(c, 16<<10)
	// The end of the run (or its cancellation) unblocks a request in
	// flight on this connection.
	t.stop = context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	return nil
}

func (t *target) roundTrip(ctx context.Context, path string, body []byte) (int, []byte, error) {
	if t.conn == nil {
		if err := t.dial(ctx); err != nil {
			return 0, nil, err
		}
	}
	deadline := time.Now().Add(t.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := t.conn.SetDeadline(deadline); err != nil {
		return 0, nil, err
	}
	if err := ctx.Err(); err != nil {
		return 0, nil, err // ended before the deadline above replaced the run's cut
	}
	bw := t.bw
	bw.WriteString("POST ")
	bw.WriteString(t.prefix)
	bw.WriteString(path)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(t.host)
	if t.auth != "" {
		bw.WriteString("\r\nAuthorization: ")
		bw.WriteString(t.auth)
	}
	bw.WriteString("\r\nContent-Type: application/json\r\nContent-Length: ")
	bw.WriteString(strconv.Itoa(len(body)))
	bw.WriteString("\r\n\r\n")
	bw.Write(body)
	if err := bw.Flush(); err != nil {
		return 0, nil, err
	}
	resp, err := http.ReadResponse(t.br, nil)
	if err != nil {
		return 0, nil, err
	}
	t.buf.Reset()
	_, err = t.buf.ReadFrom(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return 0, nil, err
	}
	if resp.Close {
		t.close()
	}
	return resp.StatusCode, t.buf.Bytes(), nil
}

// ended reports whether the run is over: ctx is done, or its deadline has
// passed (a connection's deadline, which is the run's, can fire before
// ctx's own timer does).
func ended(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

func (t *target) close() {
	if t.conn == nil {
		return
	}
	t.stop()
	_ = t.conn.Close()
	t.conn, t.br, t.bw, t.stop = nil, nil, nil, nil
}

// classify names a response's outcome: "" for success, "http_<status>",
// or "sql_error" for a 200 whose JSON carries an error.
func classify(status int, body []byte) string {
	switch {
	case status != http.StatusOK:
		return "http_" + strconv.Itoa(status)
	case bytes.Contains(body, []byte(`"error":`)):
		return "sql_error"
	}
	return ""
}

// send posts one request through c, with the Authorization header auth
// unless it is empty, and classifies its outcome ("" for success,
// "transport" when no response came).
func send(ctx context.Context, c *http.Client, url string, body []byte, auth string) string {
	kind, _ := sendErr(ctx, c, url, body, auth)
	return kind
}

// sendErr is send with the transport error, for messages.
func sendErr(ctx context.Context, c *http.Client, url string, body []byte, auth string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return "transport", err
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "transport", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "transport", err
	}
	return classify(resp.StatusCode, b), nil
}
