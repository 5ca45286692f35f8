package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A worker's own connection: keep-alive, the server's closes, chunked
// bodies, error statuses and a stalled server, each classified the way
// the shared client classifies it.
func TestTargetConnection(t *testing.T) {
	var conns atomic.Int64
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/prefix/ok", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"results":[{}]}`)
	})
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || string(b) != `["SELECT 1"]` {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		_, _ = io.WriteString(w, `{"results":[{}]}`)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		// Larger than the server's buffer: sent chunked.
		_, _ = io.WriteString(w, `{"results":[{"values":"`+strings.Repeat("x", 64<<10)+`"}]}`)
	})
	mux.HandleFunc("/sqlerr", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"results":[{"error":"no such table: t"}]}`)
	})
	mux.HandleFunc("/unavailable", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"not ready"}`, http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/close", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		_, _ = io.WriteString(w, `{"results":[{}]}`)
	})
	mux.HandleFunc("/stall", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	defer close(release) // before Close, which waits for handlers

	tg, err := newTarget(srv.URL, nil, 200*time.Millisecond, access{})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.close()
	ctx := context.Background()
	body := []byte(`["SELECT 1"]`)
	for _, tc := range []struct {
		path      string
		want      string
		wantConns int64 // connections opened so far
	}{
		{"/ok", "", 1},
		{"/ok", "", 1},
		{"/big", "", 1},
		{"/ok", "", 1},
		{"/sqlerr", "sql_error", 1},
		{"/unavailable", "http_503", 1},
		{"/close", "", 1},
		{"/ok", "", 2}, // the server closed: a new connection
		{"/stall", "transport", 2},
		{"/ok", "", 3}, // the timed-out connection was dropped
	} {
		if got := tg.send(ctx, tc.path, body); got != tc.want {
			t.Fatalf("%s: %q, want %q", tc.path, got, tc.want)
		}
		if n := conns.Load(); n != tc.wantConns {
			t.Fatalf("after %s: %d connections, want %d", tc.path, n, tc.wantConns)
		}
	}

	// A base with a path keeps it.
	pre, _ := newTarget(srv.URL+"/prefix/", nil, time.Second, access{})
	defer pre.close()
	if got := pre.send(ctx, "/ok", body); got != "" {
		t.Fatalf("prefixed base: %q", got)
	}

	// The end of the run unblocks a request in flight.
	cctx, cancel := context.WithCancel(ctx)
	long, _ := newTarget(srv.URL, nil, time.Minute, access{})
	defer long.close()
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	if got := long.send(cctx, "/stall", body); got != "transport" {
		t.Fatalf("cancelled: %q", got)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("cancel took %v", d)
	}
}

// Every worker's connection is open before the clock starts, so a run's
// latencies never include a handshake (with 256 workers, the handshakes
// bunched at the start were 1.5% of an open-loop run's requests).
func TestTargetsConnectBeforeTheRun(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"results":[{}]}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	cfg := Config{Addrs: []string{srv.URL}, Workers: 8}.WithDefaults()
	ts, err := openTargets(context.Background(), cfg, []string{srv.URL, srv.URL}, nil, access{})
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(ts)
	for i, w := range ts {
		for j, tg := range w {
			if tg.conn == nil {
				t.Fatalf("worker %d's target %d has no connection before the run", i, j)
			}
		}
	}
	// And the run uses them: no connection is opened while it runs. (The
	// server counts a connection when it accepts it, which may lag.)
	for deadline := time.Now().Add(10 * time.Second); conns.Load() < 16 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	before := conns.Load()
	for _, w := range ts {
		for _, tg := range w {
			if kind := tg.send(context.Background(), "/db/execute", []byte(`["SELECT 1"]`)); kind != "" {
				t.Fatalf("send: %s", kind)
			}
		}
	}
	if got := conns.Load(); got != before {
		t.Fatalf("%d connections opened during the requests", got-before)
	}

	// A target that refuses connections fails the run before it starts.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	if _, err := openTargets(context.Background(), cfg, []string{dead}, nil, access{}); err == nil {
		t.Fatal("no error for a target that refuses connections")
	}
}

// https:// targets: each worker keeps one TLS connection (handshake before
// the run, HTTP/1.1) and every request, the setup's too, carries the Basic
// credentials, a URL's own user:pass@ winning over the Config's; an
// untrusted server fails the run before it starts.
func TestRunOverHTTPSWithCredentials(t *testing.T) {
	var conns, requests atomic.Int64
	var bad atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		u, p, ok := r.BasicAuth()
		switch {
		case r.TLS == nil || r.ProtoMajor != 1:
			bad.Store("not HTTP/1.1 over TLS: " + r.Proto)
		case !ok || u != "alice" || p != "secret":
			bad.Store("credentials " + u + ":" + p)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, `{"results":[{}]}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())

	u, _ := url.Parse(srv.URL)
	withUser := "https://alice:secret@" + u.Host
	for _, cfg := range []Config{
		{Addrs: []string{srv.URL}, User: "alice", Password: "secret"},
		{Addrs: []string{withUser}, User: "bob", Password: "wrong"},
	} {
		conns.Store(0)
		requests.Store(0)
		cfg.Workers, cfg.Requests, cfg.TLS = 4, 200, &tls.Config{RootCAs: pool}
		res, err := Run(context.Background(), cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if v := bad.Load(); v != nil {
			t.Fatalf("server saw %v", v)
		}
		if res.Requests != 200 || len(res.Errors) != 0 {
			t.Fatalf("%d requests, errors %v", res.Requests, res.Errors)
		}
		if strings.Contains(res.Targets, "secret") {
			t.Fatalf("targets show the password: %s", res.Targets)
		}
		// 4 workers' own connections and the setup's (the CREATE TABLE):
		// keep-alive, no connection per request.
		for deadline := time.Now().Add(10 * time.Second); conns.Load() < 5 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		if n := conns.Load(); n != 5 || requests.Load() != 201 {
			t.Fatalf("%d connections for %d requests, want 5 for 201", n, requests.Load())
		}
	}

	// An untrusted certificate: the run does not start.
	_, err := Run(context.Background(), Config{Addrs: []string{srv.URL}, Workers: 2, Requests: 10, NoSetup: true,
		TLS: &tls.Config{RootCAs: x509.NewCertPool()}}, nil)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted server: %v", err)
	}
}
