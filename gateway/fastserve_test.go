package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/skiffdb/skiff/actors/lifecycle"
	"github.com/skiffdb/skiff/actors/queue"
	"github.com/skiffdb/skiff/actors/replica"
	"github.com/skiffdb/skiff/gateway/auth"
	"github.com/skiffdb/skiff/gateway/metrics"
)

// fastPair is the same gateway served by both HTTP servers.
type fastPair struct {
	net, fast string
	data      *fakeData
	p         *phases
}

func startFastPair(t *testing.T, cfg Config) fastPair {
	t.Helper()
	fp := fastPair{data: &fakeData{}, p: &phases{}}
	fp.p.set(lifecycle.Ready, 1)
	withMetrics := func(c Config) Config {
		m, err := metrics.New(metrics.Config{State: fp.p.st.Load})
		if err != nil {
			t.Fatal(err)
		}
		c.Metrics = m
		return c
	}
	cfg.Server = ServerNet
	fp.net = startGatewayCfg(t, withMetrics(cfg), fp.data, fp.p)
	cfg.Server = ServerFast
	fp.fast = startGatewayCfg(t, withMetrics(cfg), fp.data, fp.p)
	return fp
}

// answer is a response as a client sees it, without the Date header and
// with the gateway's own address as ADDR.
func answer(t *testing.T, base, method, target, body string, hdr map[string]string) string {
	t.Helper()
	req, err := http.NewRequest(method, base+target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == "" {
		req.Body = nil
	}
	for k, v := range hdr {
		if k == "chunked" {
			req.ContentLength = -1
			req.Body = io.NopCloser(strings.NewReader(body))
			continue
		}
		req.Header.Set(k, v)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var keys []string
	for k := range resp.Header {
		if k != "Date" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d\n", resp.StatusCode)
	for _, k := range keys {
		fmt.Fprintf(&sb, "%s: %s\n", k, strings.Join(resp.Header[k], ", "))
	}
	sb.Write(b)
	// Each gateway advertises its own address.
	return strings.ReplaceAll(sb.String(), strings.TrimPrefix(base, "http://"), "ADDR")
}

// The native fasthttp path (fastData) and the adaptors answer every
// request exactly as net/http's server does: status, every header but
// Date, and body (API.md 1.1-1.8, 1.12).
func TestFastDataMatchesNetHTTP(t *testing.T) {
	fp := startFastPair(t, Config{AllowOrigin: "https://app.example"})
	big := `["SELECT 1", "` + strings.Repeat("x", 2*fastMaxHeldBody) + `"]`
	json1 := map[string]string{"Content-Type": "application/json"}
	cases := []struct {
		// native: fastData serves it itself; the others it declines.
		native                     bool
		name, method, target, body string
		hdr                        map[string]string
		phase                      lifecycle.Phase
		dataErr                    error
	}{
		{native: true, name: "post", method: "POST", target: "/db/query", body: `["SELECT 1"]`, hdr: json1},
		{native: true, name: "post two, pretty, timings off", method: "POST", target: "/db/query?pretty", body: `["SELECT 1", "SELECT 2"]`},
		{native: true, name: "associative", method: "POST", target: "/db/query?associative&level=none", body: `["SELECT 1"]`},
		{native: true, name: "parameters", method: "POST", target: "/db/query?level=weak", body: `[["SELECT ?", 1]]`},
		{native: true, name: "linearizable", method: "POST", target: "/db/query?level=linearizable", body: `["SELECT 1"]`},
		{native: true, name: "freshness", method: "POST", target: "/db/query?level=none&freshness=1s", body: `["SELECT 1"]`},
		{native: true, name: "get q", method: "GET", target: "/db/query?q=SELECT%201"},
		{native: true, name: "get q, blob_array", method: "GET", target: "/db/query?q=SELECT%201&blob_array"},
		{name: "get without q", method: "GET", target: "/db/query"},
		{native: true, name: "write via query", method: "POST", target: "/db/query", body: `["INSERT INTO t VALUES(1)"]`},
		{name: "strong: declined", method: "POST", target: "/db/query?level=strong", body: `["SELECT 1"]`},
		{name: "redirect: declined", method: "POST", target: "/db/query?redirect", body: `["SELECT 1"]`},
		{name: "bad json", method: "POST", target: "/db/query", body: `["SELECT 1"`},
		{name: "bad parameter", method: "POST", target: "/db/query?timeout=xyz", body: `["SELECT 1"]`},
		{name: "empty body", method: "POST", target: "/db/query"},
		{name: "pragma", method: "POST", target: "/db/query", body: `["PRAGMA journal_mode=DELETE"]`},
		{name: "method", method: "PUT", target: "/db/query", body: `["SELECT 1"]`},
		{name: "options", method: "OPTIONS", target: "/db/query"},
		{name: "prefix route", method: "POST", target: "/db/query/x", body: `["SELECT 1"]`},
		{name: "unnormalized path", method: "GET", target: "//db/query?q=SELECT%201"},
		{name: "dot segments", method: "GET", target: "/db/../db/query?q=SELECT%201"},
		{name: "chunked", method: "POST", target: "/db/query", body: `["SELECT 1"]`, hdr: map[string]string{"chunked": ""}},
		{name: "streamed body past the held size", method: "POST", target: "/db/query", body: big},
		{name: "streamed body, execute", method: "POST", target: "/db/execute", body: big},
		{name: "body past MaxBodyBytes", method: "POST", target: "/db/execute", body: `["` + strings.Repeat("x", DefaultMaxBodyBytes) + `"]`},
		{name: "starting", method: "POST", target: "/db/query", body: `["SELECT 1"]`, phase: lifecycle.Starting},
		{native: true, name: "degraded, none", method: "POST", target: "/db/query?level=none", body: `["SELECT 1"]`, phase: lifecycle.Degraded},
		{name: "degraded, weak", method: "POST", target: "/db/query?level=weak", body: `["SELECT 1"]`, phase: lifecycle.Degraded},
		{native: true, name: "stale read", method: "POST", target: "/db/query?level=none&freshness=1s", body: `["SELECT 1"]`, dataErr: replica.ErrStaleRead},
		{native: true, name: "data error", method: "POST", target: "/db/query", body: `["SELECT 1"]`, dataErr: errors.New("disk on fire")},
		{native: true, name: "no leader", method: "POST", target: "/db/query?level=weak", body: `["SELECT 1"]`, dataErr: replica.ErrNoLeader},
		{native: true, name: "execute", method: "POST", target: "/db/execute", body: `["INSERT INTO t VALUES(1)"]`},
		{native: true, name: "execute, pretty, raft index, transaction", method: "POST", target: "/db/execute?pretty&raft_index&transaction", body: `["INSERT INTO t VALUES(1)", "INSERT INTO t VALUES(2)"]`},
		{native: true, name: "execute, returning", method: "POST", target: "/db/execute", body: `["INSERT INTO t VALUES(1) RETURNING *"]`},
		{native: true, name: "execute, rewritten", method: "POST", target: "/db/execute", body: `["INSERT INTO t VALUES(RANDOM())"]`},
		{native: true, name: "execute, parameters", method: "POST", target: "/db/execute?level=strong", body: `[["INSERT INTO t VALUES(?)", 1]]`},
		{native: true, name: "execute, data error", method: "POST", target: "/db/execute", body: `["INSERT INTO t VALUES(1)"]`, dataErr: errors.New("disk on fire")},
		{native: true, name: "execute, no leader", method: "POST", target: "/db/execute", body: `["INSERT INTO t VALUES(1)"]`, dataErr: replica.ErrNoLeader},
		{name: "execute, GET", method: "GET", target: "/db/execute?q=INSERT%20INTO%20t%20VALUES(1)"},
		{name: "execute, degraded", method: "POST", target: "/db/execute", body: `["INSERT INTO t VALUES(1)"]`, phase: lifecycle.Degraded},
		{name: "execute, pragma", method: "POST", target: "/db/execute", body: `["PRAGMA journal_mode=DELETE"]`},
		{name: "status", method: "GET", target: "/readyz"},
		{name: "console, HEAD (http.ServeContent's length)", method: "HEAD", target: "/console/"},
		{name: "data route, HEAD", method: "HEAD", target: "/db/query?q=SELECT%201"},
		{name: "backup (streamed answer)", method: "GET", target: "/db/backup"},
		{name: "not found", method: "GET", target: "/nope"},
	}
	g, _ := unservedGateway(t, Config{}, fp.data, fp.p)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ph := c.phase
			if ph == "" {
				ph = lifecycle.Ready
			}
			fp.p.set(ph, 1)
			defer fp.p.set(lifecycle.Ready, 1)
			fp.data.err = c.dataErr
			defer func() { fp.data.err = nil }()
			want := answer(t, fp.net, c.method, c.target, c.body, c.hdr)
			got := answer(t, fp.fast, c.method, c.target, c.body, c.hdr)
			if got != want {
				t.Fatalf("fasthttp answered\n%s\nnet/http answered\n%s", clip(got), clip(want))
			}
			if _, chunked := c.hdr["chunked"]; !chunked && len(c.body) <= fastMaxHeldBody {
				if served := fastDataServes(t, g, c.method, c.target, c.body, c.hdr); served != c.native {
					t.Fatalf("fastData served it: %v, want %v", served, c.native)
				}
			}
		})
	}
}

// A queued write's answer carries a sequence number of its own, so it is
// not compared above; fastData leaves it to ServeHTTP.
func TestFastDataDeclinesQueuedWrites(t *testing.T) {
	p := &phases{}
	p.set(lifecycle.Ready, 1)
	g, _ := unservedGateway(t, Config{}, &fakeData{}, p)
	for _, target := range []string{"/db/execute?queue", "/db/execute?queue&wait"} {
		if fastDataServes(t, g, "POST", target, `["INSERT INTO t VALUES(1)"]`, nil) {
			t.Fatalf("%s served natively", target)
		}
	}
}

// fastDataServes reports whether g.fastData serves a request itself.
func fastDataServes(t *testing.T, g *Gateway, method, target, body string, hdr map[string]string) bool {
	t.Helper()
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(target)
	if body != "" {
		req.SetBodyString(body)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, nil, nil)
	return g.fastData(&ctx, &heldBuf{b: []byte(body)})
}

// unservedGateway is a gateway and its queue, not yet run, on a listener
// of its own (closed at the test's end).
func unservedGateway(t *testing.T, cfg Config, data Data, p *phases) (*Gateway, *queue.Queue) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	q, err := queue.New(queue.Config{}, data)
	if err != nil {
		t.Fatal(err)
	}
	cfg.AdvAddr = ln.Addr().String()
	g, err := New(cfg, ln, data, q, p.st.Load)
	if err != nil {
		t.Fatal(err)
	}
	return g, q
}

func clip(s string) string {
	if len(s) > 2000 {
		return s[:2000] + "..."
	}
	return s
}

// With -auth, the native path checks credentials as ServeHTTP does, and
// counts them once (API.md 1.12).
func TestFastDataAuthMatchesNetHTTP(t *testing.T) {
	type cred struct {
		Username string   `json:"username"`
		Password string   `json:"password"`
		Perms    []string `json:"perms"`
	}
	b, _ := json.Marshal([]cred{{"reader", "pw", []string{"query", "status"}}, {"writer", "pw", []string{"execute"}}})
	path := filepath.Join(t.TempDir(), "auth.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := auth.Open(auth.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	fp := startFastPair(t, Config{Auth: store})
	basic := func(u, p string) map[string]string {
		r, _ := http.NewRequest("GET", "/", nil)
		r.SetBasicAuth(u, p)
		return map[string]string{"Authorization": r.Header.Get("Authorization")}
	}
	for _, c := range []struct {
		name string
		hdr  map[string]string
	}{
		{"allowed", basic("reader", "pw")},
		{"wrong password", basic("reader", "no")},
		{"writer", basic("writer", "pw")},
		{"no credentials", nil},
		{"not basic", map[string]string{"Authorization": "Bearer x"}},
		{"allowed, node starting", basic("reader", "pw")},
	} {
		t.Run(c.name, func(t *testing.T) {
			if strings.Contains(c.name, "starting") {
				fp.p.set(lifecycle.Starting, 0)
				defer fp.p.set(lifecycle.Ready, 1)
			}
			for _, route := range []string{"/db/query", "/db/execute"} {
				want := answer(t, fp.net, "POST", route, `["SELECT 1"]`, c.hdr)
				got := answer(t, fp.fast, "POST", route, `["SELECT 1"]`, c.hdr)
				if got != want {
					t.Fatalf("%s: fasthttp answered\n%s\nnet/http answered\n%s", route, got, want)
				}
			}
		})
	}
	vars := func(base string) string {
		v := answer(t, base, "GET", "/debug/vars?key=http", "", basic("reader", "pw"))
		var doc map[string]any
		if err := json.Unmarshal([]byte(v[strings.Index(v, "{"):]), &doc); err != nil {
			t.Fatalf("vars: %v: %s", err, v)
		}
		return fmt.Sprint(doc["authOK"], " ", doc["authFail"], " ", doc["queries"], " ", doc["executions"])
	}
	if n, f := vars(fp.net), vars(fp.fast); n != f {
		t.Fatalf("auth counters: net/http %s, fasthttp %s", n, f)
	}
}

// startAdapted serves h through fastServer's adaptor (serveAdapted), as
// every request but fastData's is served.
func startAdapted(t *testing.T, h http.Handler) string {
	t.Helper()
	p := &phases{}
	p.set(lifecycle.Ready, 1)
	g, _ := unservedGateway(t, Config{}, &fakeData{}, p)
	g.srv.Handler = h
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- newFastServer(g).run(ctx, g.ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return "http://" + g.ln.Addr().String()
}

// The adaptor frames and types an answer as net/http's server does, for
// GET and for HEAD: a HEAD keeps the handler's Content-Length
// (http.ServeContent's: the console), gets the length of a body that fits
// net/http's buffer and none past it; the type is sniffed unless the
// handler set one, a nil one included, or a Content-Encoding.
func TestAdaptedFramingMatchesNetHTTP(t *testing.T) {
	html := []byte("<!doctype html><title>x</title>")
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/small":
			_, _ = w.Write(html)
		case "/opt-out":
			w.Header()["Content-Type"] = nil
			_, _ = w.Write(html)
		case "/encoded":
			w.Header().Set("Content-Encoding", "identity")
			_, _ = w.Write(html)
		case "/content":
			http.ServeContent(w, r, "x.html", time.Time{}, bytes.NewReader(html))
		case "/past-buffer":
			_, _ = w.Write(bytes.Repeat([]byte("a"), 3000))
		case "/streamed":
			_, _ = w.Write(bytes.Repeat([]byte("a"), 2*fastMaxHeldAnswer))
		case "/empty":
		case "/refused":
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})
	fast := startAdapted(t, handler)
	net := httptest.NewServer(handler)
	t.Cleanup(net.Close)
	for _, path := range []string{"/small", "/opt-out", "/encoded", "/content", "/past-buffer", "/streamed", "/empty", "/refused"} {
		for _, method := range []string{"GET", "HEAD"} {
			want := answer(t, net.URL, method, path, "", nil)
			got := answer(t, fast, method, path, "", nil)
			if method == "GET" && path == "/past-buffer" {
				// net/http chunks a body past its buffer, fasthttp sends
				// its length: both frame it, and a client reads the same.
				got = strings.Replace(got, "Content-Length: 3000\n", "", 1)
			}
			if got != want {
				t.Errorf("%s %s: fasthttp answered\n%s\nnet/http answered\n%s", method, path, clip(got), clip(want))
			}
		}
	}
}

// A large answer streams as the handler writes it, chunked, and is never
// held whole; a flushed one reaches the client before the handler ends.
func TestAdaptedAnswerStreams(t *testing.T) {
	release := make(chan struct{})
	const part = 32 << 10
	base := startAdapted(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			chunk := bytes.Repeat([]byte("0123456789abcdef"), part/16)
			for i := 0; i < 320; i++ { // 10 MiB
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		case "/flushed":
			_, _ = io.WriteString(w, "first part\n")
			w.(http.Flusher).Flush()
			<-release
			_, _ = io.WriteString(w, "second part\n")
		}
	}))
	resp, err := http.Get(base + "/big")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != 320*part || resp.ContentLength != -1 || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("big answer: %d bytes, err %v, length %d, type %q", n, err, resp.ContentLength, resp.Header.Get("Content-Type"))
	}
	resp, err = http.Get(base + "/flushed")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "first part\n" {
		t.Fatalf("first part: %q, %v", line, err)
	}
	close(release)
	if rest, err := io.ReadAll(br); err != nil || string(rest) != "second part\n" {
		t.Fatalf("second part: %q, %v", rest, err)
	}
}

// An aborted handler (http.ErrAbortHandler) drops the connection: no
// answer before anything was sent, a cut body after, as net/http does.
// A client that goes away fails the handler's next write.
func TestAdaptedAbortAndClientGone(t *testing.T) {
	writeErr := make(chan error, 1)
	base := startAdapted(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/abort-before":
			panic(http.ErrAbortHandler)
		case "/abort-after":
			_, _ = w.Write(make([]byte, 2*fastMaxHeldAnswer))
			panic(http.ErrAbortHandler)
		case "/forever":
			chunk := make([]byte, 16<<10)
			for {
				if _, err := w.Write(chunk); err != nil {
					writeErr <- err
					return
				}
			}
		}
	}))
	if resp, err := http.Get(base + "/abort-before"); err == nil {
		resp.Body.Close()
		t.Fatalf("abort before the answer: status %d, want no answer", resp.StatusCode)
	}
	resp, err := http.Get(base + "/abort-after")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("a body cut by an abort read as whole")
	}
	resp.Body.Close()
	resp, err = http.Get(base + "/forever")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case err := <-writeErr:
		if err == nil {
			t.Fatal("nil write error")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the handler still writes after its client went away")
	}
}

// A request is the handler's own: what it keeps of one (a path, a
// header, a query) does not change when fasthttp reads the connection's
// next request into the same buffers.
func TestAdaptedRequestIsCopied(t *testing.T) {
	var kept []string
	var mu sync.Mutex
	base := startAdapted(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		kept = append(kept, r.Method+" "+r.URL.Path+" "+r.URL.RawQuery+" "+r.Header.Get("X-Tag")+" "+r.Host)
		mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	c := &http.Client{}
	var want []string
	for i := 0; i < 50; i++ {
		tag := strings.Repeat(string(rune('a'+i%26)), 10+i)
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/p%d/%s?q=%d", base, i, tag, i), nil)
		req.Header.Set("X-Tag", tag)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		want = append(want, fmt.Sprintf("GET /p%d/%s q=%d %s %s", i, tag, i, tag, strings.TrimPrefix(base, "http://")))
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range want {
		if kept[i] != want[i] {
			t.Fatalf("request %d kept as %q, want %q", i, kept[i], want[i])
		}
	}
}

// A body past fastMaxHeldBody, or chunked, reaches the handler as it
// arrives; one the handler leaves unread closes the connection after the
// answer, as net/http does.
func TestAdaptedStreamedBody(t *testing.T) {
	base := startAdapted(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ignore" {
			_, _ = io.WriteString(w, "ignored")
			return
		}
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		fmt.Fprintf(w, "%d %x %v %d", n, h.Sum(nil), err, r.ContentLength)
	}))
	body := bytes.Repeat([]byte("skiff"), 1<<20)
	sum := sha256.Sum256(body)
	for _, chunked := range []bool{false, true} {
		req, _ := http.NewRequest("POST", base+"/sum", bytes.NewReader(body))
		wantLen := int64(len(body))
		if chunked {
			req.ContentLength, req.Body = -1, io.NopCloser(bytes.NewReader(body))
			wantLen = -1
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("%d %x <nil> %d", len(body), sum, wantLen); string(got) != want {
			t.Fatalf("chunked %v: %q, want %q", chunked, got, want)
		}
	}
	resp, err := http.Post(base+"/ignore", "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != "ignored" || !resp.Close {
		t.Fatalf("unread body: %q, connection closed %v", got, resp.Close)
	}
}

// A gateway told to stop at once stops, even before its server has begun
// to serve (fasthttp's Shutdown does not stop a Serve still to come).
func TestFastServerStopsAtOnce(t *testing.T) {
	for i := 0; i < 20; i++ {
		p := &phases{}
		p.set(lifecycle.Ready, 1)
		g, _ := unservedGateway(t, Config{}, &fakeData{}, p)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		done := make(chan error, 1)
		go func() { done <- g.Run(ctx) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return after its context ended")
		}
	}
}

// rawExchange sends raw on a new connection and returns all it reads
// until the server closes it.
func rawExchange(t *testing.T, base, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v (after %d bytes)", err, len(b))
	}
	return string(b)
}

// An HTTP/1.0 client cannot read chunks: a streamed answer reaches it
// whole, ended by the connection's close.
func TestAdaptedHTTP10Streams(t *testing.T) {
	big := strings.Repeat("x", 3*fastMaxHeldAnswer)
	base := startAdapted(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, big)
	}))
	got := rawExchange(t, base, "GET /big HTTP/1.0\r\n\r\n")
	head, body, ok := strings.Cut(got, "\r\n\r\n")
	if !ok || !strings.HasPrefix(head, "HTTP/1.0 200 OK\r\n") || strings.Contains(strings.ToLower(head), "chunked") || body != big {
		t.Fatalf("HTTP/1.0 answer: head %q, %d body bytes", head, len(body))
	}
}

// A request body is what net/http gives a handler: none for a GET
// without a length, and a body cut short fails with ErrUnexpectedEOF
// whatever its size, never reading as a whole shorter body.
func TestAdaptedRequestBodies(t *testing.T) {
	base := startAdapted(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%d %v %d %v", r.ContentLength, r.Body == http.NoBody, len(b), err)
	}))
	if got := rawExchange(t, base, "GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); !strings.HasSuffix(got, "0 true 0 <nil>") {
		t.Fatalf("GET: %q", got)
	}
	for _, n := range []int{100, 20000, 200000} {
		sent := strings.Repeat("y", n/2)
		c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", n, sent)
		_ = c.(*net.TCPConn).CloseWrite()
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		b, _ := io.ReadAll(c)
		c.Close()
		if strings.Contains(string(b), " <nil>") || !strings.HasPrefix(string(b), "HTTP/1.1 ") {
			t.Fatalf("a %d-byte body cut at %d: %q", n, n/2, b)
		}
	}
}

// A handler that answers without reading a large upload (a refusal) gets
// its answer to the client, not a reset.
func TestAdaptedRefusalReachesUploader(t *testing.T) {
	base := startAdapted(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		_, _ = io.WriteString(w, "too large\n")
	}))
	for i := 0; i < 10; i++ {
		resp, err := http.Post(base+"/x", "application/octet-stream", bytes.NewReader(make([]byte, 5<<20)))
		if err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || string(b) != "too large\n" {
			t.Fatalf("upload %d: %d %q", i, resp.StatusCode, b)
		}
	}
}

// A handler whose answer streams before it read a large upload leaves the
// rest of the upload unread: the connection closes after the answer, as
// it does after a held one, rather than fasthttp reading the rest with the
// read deadline the upload cleared. Nothing in the unread body is taken
// for a request.
func TestAdaptedStreamedAnswerClosesOnUnreadBody(t *testing.T) {
	base := startAdapted(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/first" {
			_, _ = io.WriteString(w, "answered "+r.URL.Path)
			return
		}
		_, _ = w.Write(bytes.Repeat([]byte("b"), 2*fastMaxHeldAnswer))
	}))
	inner := "GET /inside-the-body HTTP/1.1\r\nHost: x\r\n\r\n"
	body := strings.Repeat("a", 100<<10) + inner + strings.Repeat("a", 100<<10)
	raw := fmt.Sprintf("POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(body), body) +
		"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"
	out := rawExchange(t, base, raw)
	if !strings.HasPrefix(out, "HTTP/1.1 200 ") || !strings.Contains(out, "Connection: close") {
		t.Fatalf("answer: %.300q", out)
	}
	if n := strings.Count(out, "HTTP/1.1 "); n != 1 || strings.Contains(out, "answered") {
		t.Fatalf("%d answers on the connection, want the first only: %q", n, out[len(out)-200:])
	}
	if n := strings.Count(out, "b"); n < 2*fastMaxHeldAnswer {
		t.Fatalf("answer cut: %d bytes of it", n)
	}
}
