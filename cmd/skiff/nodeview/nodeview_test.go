package nodeview

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestProgressText(t *testing.T) {
	for _, tc := range []struct {
		name  string
		phase string
		p     Progress
		want  string
	}{
		{"ready", "ready", Progress{AppliedIndex: 9, TargetIndex: 3}, "-"},
		{"opening", "opening", Progress{DBBytes: 3 << 20}, "opening 3.0 MiB"},
		{"replaying", "recovering", Progress{Step: "replaying_log", AppliedIndex: 25, TargetIndex: 100, ETASeconds: 1.5},
			"replaying 25/100 entries [###-------] 25% eta 1.5s"},
		{"receiving", "recovering", Progress{Step: "receiving_snapshot", ReceivedBytes: 512 << 10, LeaderSentTotal: 1 << 20},
			"receiving snapshot 512.0 KiB/1.0 MiB [#####-----] 50%"},
		{"receiving, total unknown", "joining", Progress{Step: "receiving_snapshot", ReceivedBytes: 100}, "receiving snapshot 100 B"},
		{"installing", "recovering", Progress{Step: "installing_snapshot", SnapshotBytes: 10, SnapshotTotal: 10},
			"installing snapshot 10 B/10 B [##########] 100%"},
		{"sending", "ready", Progress{SentBytes: 1, SentTotal: 4}, "sending snapshot 1 B/4 B [###-------] 25%"},
		{"other step", "joining", Progress{Step: "awaiting_promotion"}, "awaiting promotion"},
		{"catching up", "degraded", Progress{AppliedIndex: 5, TargetIndex: 10}, "catching up 5/10 entries [#####-----] 50%"},
	} {
		if got := ProgressText(tc.phase, tc.p); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestBar(t *testing.T) {
	for frac, want := range map[float64]string{0: "[----] 0%", 0.5: "[##--] 50%", 1: "[####] 100%", 2: "[####] 100%", -1: "[----] 0%"} {
		if got := Bar(frac, 4); got != want {
			t.Errorf("Bar(%v) = %q, want %q", frac, got, want)
		}
	}
}

// fakeCluster is nodes 1 (leader, ready), 2 (follower, recovering) and 3
// (non-voter, down).
func fakeCluster(t *testing.T) (addrs []string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close()
	var s1, s2 *httptest.Server
	handler := func(id, phase, progress string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/nodes":
				if r.URL.RawQuery != "nonvoters&ver=2" {
					t.Errorf("/nodes query %q", r.URL.RawQuery)
				}
				_, _ = io.WriteString(w, `{"nodes":[`+
					`{"id":"1","api_addr":"`+s1.URL+`","addr":"r1","voter":true,"leader":true,"reachable":true},`+
					`{"id":"2","api_addr":"`+s2.URL+`","addr":"r2","voter":true,"reachable":true},`+
					`{"id":"3","api_addr":"http://`+down+`","addr":"r3","voter":false,"reachable":false}]}`)
			case "/status":
				_, _ = io.WriteString(w, `{"store":{"node_id":"`+id+`","fsm_index":1},"lifecycle":{"state":"`+phase+`","progress":`+progress+`}}`)
			}
		}
	}
	s1 = httptest.NewServer(handler("1", "ready", `{"applied_index":42,"target_index":42}`))
	s2 = httptest.NewServer(handler("2", "recovering", `{"applied_index":10,"target_index":40,"step":"replaying_log"}`))
	t.Cleanup(s1.Close)
	t.Cleanup(s2.Close)
	return []string{down, strings.TrimPrefix(s1.URL, "http://")}
}

func TestGatherRender(t *testing.T) {
	addrs := fakeCluster(t)
	cfg := DefaultConfig()
	cfg.Addrs = addrs
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f, err := v.Gather(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f.At = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	got := Render(f)
	lines := strings.Split(got, "\n")
	if lines[0] != "Skiff cluster via "+addrs[1]+" at 03:04:05" {
		t.Errorf("title %q", lines[0])
	}
	// Rows: 1 leader ready, 2 follower replaying, 3 non-voter down.
	for i, want := range [][]string{
		{"| 1 ", "| leader ", "| yes ", "| ready ", "| - ", "| 42 "},
		{"| 2 ", "| follower ", "| yes ", "| recovering ", "| replaying 10/40 entries [###-------] 25% ", "| 10 "},
		{"| 3 ", "| non-voter ", "| no ", "| - "},
	} {
		row := lines[4+i]
		for _, w := range want {
			if !strings.Contains(row, w) {
				t.Errorf("row %d %q lacks %q\n%s", i+1, row, w, got)
			}
		}
	}
	if len(f.Nodes) != 3 {
		t.Errorf("%d nodes, want 3 (the down address is node 3's, not another row)", len(f.Nodes))
	}
}

func TestGatherNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := DefaultConfig()
	cfg.Addrs = []string{addr}
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := v.Once(context.Background(), &b); !errors.Is(err, ErrNoNode) {
		t.Fatalf("Once: %v, want ErrNoNode", err)
	}
	if !strings.Contains(b.String(), "(no /nodes answer)") || !strings.Contains(b.String(), "| ?  | "+addr) {
		t.Errorf("frame:\n%s", b.String())
	}
}

func TestWatchStops(t *testing.T) {
	addrs := fakeCluster(t)
	cfg := DefaultConfig()
	cfg.Addrs, cfg.Interval = addrs[1:], 10*time.Millisecond
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &frameCounter{frames: 3, cancel: cancel}
	if err := v.Watch(ctx, nil, w); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(w.b.String(), clearScreen) || !strings.Contains(w.b.String(), "recovering") {
		t.Errorf("output %q", w.b.String())
	}
}

// frameCounter cancels after a number of redraws.
type frameCounter struct {
	b      bytes.Buffer
	frames int
	cancel context.CancelFunc
}

func (f *frameCounter) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(clearScreen)) {
		f.frames--
		if f.frames == 0 {
			f.cancel()
		}
	}
	return f.b.Write(p)
}

func TestConfigValidate(t *testing.T) {
	for name, mut := range map[string]func(*Config){
		"no addrs": func(c *Config) { c.Addrs = nil },
		"scheme":   func(c *Config) { c.Scheme = "gopher" },
		"creds":    func(c *Config) { c.Credentials = "x" },
		"interval": func(c *Config) { c.Interval = 0 },
	} {
		c := DefaultConfig()
		mut(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
