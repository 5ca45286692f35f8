package shell

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// ErrUnauthorized is a 401 from the node (rqlite's CLI says "unauthorized").
var ErrUnauthorized = errors.New("unauthorized")

// maxRedirects is rqlite's CLI bound on leader redirects.
const maxRedirects = 21

// client speaks HTTP to the node, falling back to the alternatives when
// the current host cannot be reached.
type client struct {
	cfg   Config
	hc    *http.Client
	hosts []string
	cur   int
}

func newClient(cfg Config) (*client, error) {
	tr, err := cfg.Config.Transport()
	if err != nil {
		return nil, err
	}
	hc := &http.Client{
		Timeout:   cfg.Timeout,
		Transport: tr,
		// Redirects are followed by do, which resends the body.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &client{cfg: cfg, hc: hc, hosts: append([]string{cfg.addr()}, cfg.Alternatives...)}, nil
}

// host is the host:port requests go to now.
func (c *client) host() string { return c.hosts[c.cur] }

// reply is a read response.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// do sends one request, following redirects and, when a host cannot be
// reached, trying the next one (which then becomes the current host), as
// rqlite's CLI does with -a.
func (c *client) do(ctx context.Context, method, path string, q url.Values, ctype string, body []byte) (reply, error) {
	var firstErr error
	for i := range c.hosts {
		idx := (c.cur + i) % len(c.hosts)
		r, err := c.doHost(ctx, c.hosts[idx], method, path, q, ctype, body)
		// Only a failed dial moves on: the request was never sent. After
		// a timeout a write may have been applied, and resending it
		// elsewhere could apply it twice.
		var oe *net.OpError
		if err != nil && errors.As(err, &oe) && oe.Op == "dial" && ctx.Err() == nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if err == nil {
			c.cur = idx
		}
		return r, err
	}
	return reply{}, firstErr
}

func (c *client) doHost(ctx context.Context, host, method, path string, q url.Values, ctype string, body []byte) (reply, error) {
	u := (&url.URL{Scheme: c.cfg.Scheme, Host: host, Path: strings.TrimSuffix(c.cfg.Prefix, "/") + path, RawQuery: q.Encode()}).String()
	for range maxRedirects + 1 {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, u, rd)
		if err != nil {
			return reply{}, err
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if user, pass, ok := strings.Cut(c.cfg.Credentials, ":"); ok {
			req.SetBasicAuth(user, pass)
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			return reply{}, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return reply{}, err
		}
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			return reply{}, ErrUnauthorized
		case http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			loc, err := resp.Location()
			if err != nil {
				return reply{}, fmt.Errorf("redirect without a location: %w", err)
			}
			u = loc.String()
			continue
		}
		return reply{status: resp.StatusCode, header: resp.Header, body: b}, nil
	}
	return reply{}, errors.New("maximum leader redirect limit exceeded")
}

// ok returns the body of a 200, or an error naming the status.
func (r reply) ok() ([]byte, error) {
	if r.status != http.StatusOK {
		return nil, fmt.Errorf("server responded with %d %s: %s", r.status, http.StatusText(r.status), strings.TrimSpace(string(r.body)))
	}
	return r.body, nil
}
