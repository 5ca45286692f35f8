package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skiffdb/skiff/actors/lifecycle"
	"github.com/skiffdb/skiff/actors/replica"
	"github.com/skiffdb/skiff/gateway/rqjson"
	"github.com/skiffdb/skiff/sm"
	"github.com/skiffdb/skiff/sm/cmdpb"
)

// fakeData answers like a replica would, counting calls.
type fakeData struct {
	calls atomic.Int64
	err   error
}

func (f *fakeData) Execute(_ context.Context, req *cmdpb.Request) (*cmdpb.Response, error) {
	f.calls.Add(1)
	if f.err != nil {
		return nil, f.err
	}
	out := &cmdpb.Response{RaftIndex: 7}
	for range req.Statements {
		out.Results = append(out.Results, &cmdpb.StatementResult{LastInsertId: 1, RowsAffected: 1})
	}
	return out, nil
}

func (f *fakeData) Query(_ context.Context, req *cmdpb.Request, _ replica.ReadOptions) (*cmdpb.Response, error) {
	f.calls.Add(1)
	if f.err != nil {
		return nil, f.err
	}
	out := &cmdpb.Response{}
	for _, s := range req.Statements {
		if strings.HasPrefix(strings.ToUpper(s.Sql), "INSERT") {
			out.Results = append(out.Results, &cmdpb.StatementResult{Error: sm.ErrTextWriteViaQuery})
			continue
		}
		out.Results = append(out.Results, &cmdpb.StatementResult{IsQuery: true, Columns: []string{"1"}, Types: []string{"integer"},
			Rows: []*cmdpb.Row{{Values: []*cmdpb.Value{{V: &cmdpb.Value_I{I: 1}}}}}})
	}
	return out, nil
}

func (f *fakeData) Backup(_ context.Context, b *sm.Backup) (*sm.BackupResult, error) {
	f.calls.Add(1)
	n, err := b.W.Write([]byte("SQLite format 3\x00fake"))
	return &sm.BackupResult{Bytes: int64(n)}, err
}

func (f *fakeData) Checkpoint(context.Context) (*sm.CheckpointResult, error) {
	return &sm.CheckpointResult{Frames: 3}, nil
}

func (f *fakeData) Snapshot(_ context.Context, trailing int64) (uint64, error) {
	if trailing == 0 {
		return 0, replica.ErrNothingToSnapshot
	}
	return 9, nil
}

func (f *fakeData) Boot(_ context.Context, r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}

func (f *fakeData) AddNonVoting(context.Context, uint64, string, string) error { return nil }
func (f *fakeData) RemoveMember(context.Context, uint64) error                 { return nil }
func (f *fakeData) TransferLeader(context.Context, uint64) error               { return nil }
func (f *fakeData) ExportSnapshot(context.Context) (string, error)             { return "/x/snapshot-1", nil }

// phases is a settable state source.
type phases struct {
	st atomic.Pointer[lifecycle.State]
}

func (p *phases) set(ph lifecycle.Phase, leader uint64) {
	p.st.Store(&lifecycle.State{Phase: ph, Since: time.Now(), StartedAt: time.Now(), LeaderReplicaID: leader, NodeReady: ph != lifecycle.Starting && ph != lifecycle.Opening,
		Identity: lifecycle.Identity{NodeID: "n1", ReplicaID: 1, RaftAddr: "127.0.0.1:4002", APIAddr: "127.0.0.1:4001", Voter: true}})
}

func startGateway(t *testing.T, data Data, p *phases) string {
	t.Helper()
	return startGatewayCfg(t, Config{}, data, p)
}

type reply struct {
	status int
	ctype  string
	body   string
}

func do(t *testing.T, method, url, body string) reply {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	c := &http.Client{Timeout: 60 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header.Get("Content-Type"), string(b)}
}

// TestEveryEndpointThroughEveryPhase hammers every route concurrently while
// the phase changes under it: status routes always answer 200 JSON carrying
// the phase, data routes answer 503 with the phase's reason until ready,
// and nothing panics or hangs (DESIGN.md "Lifecycle states").
func TestEveryEndpointThroughEveryPhase(t *testing.T) {
	data := &fakeData{}
	p := &phases{}
	p.set(lifecycle.Starting, 0)
	base := startGateway(t, data, p)
	endpoints := []struct{ method, path, body string }{
		{"POST", "/db/execute", `["INSERT INTO t VALUES(1)"]`},
		{"GET", "/db/query?q=SELECT+1", ""},
		{"POST", "/db/query?level=none", `["SELECT 1"]`},
		{"POST", "/db/request", `["SELECT 1","INSERT INTO t VALUES(1)"]`},
		{"GET", "/status", ""},
		{"GET", "/readyz", ""},
		{"GET", "/nodes", ""},
		{"GET", "/nodes?ver=2&nonvoters", ""},
		{"GET", "/leader", ""},
	}
	order := []lifecycle.Phase{lifecycle.Starting, lifecycle.Opening, lifecycle.Joining, lifecycle.Recovering,
		lifecycle.Ready, lifecycle.Degraded, lifecycle.Ready, lifecycle.Stopping}
	for _, ph := range order {
		leader := uint64(0)
		if ph == lifecycle.Ready || ph == lifecycle.Recovering {
			leader = 1
		}
		p.set(ph, leader)
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, e := range endpoints {
					r := do(t, e.method, base+e.path, e.body)
					checkPhaseReply(t, ph, leader, e.path, r)
				}
			}()
		}
		wg.Wait()
	}
}

func checkPhaseReply(t *testing.T, ph lifecycle.Phase, leader uint64, path string, r reply) {
	t.Helper()
	switch {
	case strings.HasPrefix(path, "/status"):
		var doc struct {
			Lifecycle struct{ State string } `json:"lifecycle"`
			Store     struct {
				Leader struct {
					NodeID string `json:"node_id"`
				} `json:"leader"`
			} `json:"store"`
		}
		if r.status != 200 || json.Unmarshal([]byte(r.body), &doc) != nil || doc.Lifecycle.State != string(ph) {
			t.Errorf("%s in %s: %d %q", path, ph, r.status, r.body)
		}
	case strings.HasPrefix(path, "/readyz"):
		want := 503
		if ph == lifecycle.Ready {
			want = 200
		}
		if r.status != want || !strings.HasPrefix(r.body, "[+]node ok") {
			t.Errorf("%s in %s: %d %q", path, ph, r.status, r.body)
		}
	case strings.HasPrefix(path, "/nodes"):
		if r.status != 200 || !strings.Contains(r.body, `"n1"`) || !strings.Contains(r.body, `"state":"`+string(ph)+`"`) {
			t.Errorf("%s in %s: %d %q", path, ph, r.status, r.body)
		}
	case path == "/leader":
		// A leader is reported only by a ready node (the same as
		// store.leader, so /readyz agrees).
		if (leader != 0 && ph == lifecycle.Ready) != (r.status == 200) {
			t.Errorf("%s in %s: %d %q", path, ph, r.status, r.body)
		}
	default: // data
		servesLocalRead := ph == lifecycle.Degraded && strings.Contains(path, "level=none")
		if ph == lifecycle.Ready || servesLocalRead {
			if r.status != 200 || !strings.HasPrefix(r.body, `{"results":[`) {
				t.Errorf("%s in %s: %d %q", path, ph, r.status, r.body)
			}
			return
		}
		wantBody := fmt.Sprintf(`{"error":%q}`+"\n", phaseErr(ph).Error())
		if ph == lifecycle.Degraded {
			wantBody = "leader not found\n"
		}
		if r.status != 503 || r.body != wantBody {
			t.Errorf("%s in %s: %d %q, want 503 %q", path, ph, r.status, r.body, wantBody)
		}
	}
}

// TestBadInput: API.md 1.2, 1.3 and 1.6 — clear 4xx texts, and the data
// path is never reached.
func TestBadInput(t *testing.T) {
	data := &fakeData{}
	p := &phases{}
	p.set(lifecycle.Ready, 1)
	base := startGateway(t, data, p)
	cases := []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"POST", "/db/execute", `[1`, 400, "invalid JSON body\n"},
		{"POST", "/db/execute", `{}`, 400, "invalid request\n"},
		{"POST", "/db/execute", `[]`, 400, "no statements\n"},
		{"POST", "/db/execute", ``, 400, "no statements\n"},
		{"POST", "/db/execute", `[["SELECT ?", {"a":{"b":1}}]]`, 400, ""},
		{"POST", "/db/execute?timeout=abc", `["SELECT 1"]`, 400, "timeout is not a valid duration\n"},
		{"POST", "/db/query?freshness_strict", `["SELECT 1"]`, 400, "freshness_strict requires freshness\n"},
		{"GET", "/db/query?q=", ``, 400, "query parameter not set\n"},
		{"GET", "/db/execute", ``, 405, ""},
		{"POST", "/status", ``, 405, ""},
		{"GET", "/nope", ``, 404, ""},
		{"POST", "/db/execute", `["PRAGMA journal_mode=DELETE"]`, 200, `{"results":[],"error":"disallowed pragma"}`},
		{"POST", "/db/query", `["pragma main.wal_checkpoint(TRUNCATE)"]`, 200, `{"results":[],"error":"disallowed pragma"}`},
		{"OPTIONS", "/anything", ``, 200, ""},
	}
	for _, tc := range cases {
		r := do(t, tc.method, base+tc.path, tc.body)
		if r.status != tc.status || (tc.want != "" && r.body != tc.want) {
			t.Errorf("%s %s %q: got %d %q, want %d %q", tc.method, tc.path, tc.body, r.status, r.body, tc.status, tc.want)
		}
	}
	if n := data.calls.Load(); n != 0 {
		t.Fatalf("bad input reached the data path %d times", n)
	}
	big := "[\"" + strings.Repeat("x", DefaultMaxBodyBytes) + "\"]"
	if r := do(t, "POST", base+"/db/execute", big); r.status != 413 {
		t.Fatalf("oversized body: %d %q", r.status, r.body)
	}
}

func TestErrorTable(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		msg    string
	}{
		{fmt.Errorf("%w: detail", rqjson.ErrUnsupportedType), 400, "unsupported type: detail"},
		{fmt.Errorf("%w: dragonboat says x", replica.ErrNoLeader), 503, "leader not found"},
		{fmt.Errorf("%w: x", replica.ErrTimeout), 503, replica.ErrTimeout.Error()},
		{replica.ErrTooLarge, 413, replica.ErrTooLarge.Error()},
		{ErrRecovering, 503, "node is recovering"},
		{fmt.Errorf("%w: %w", sm.ErrUploadCut, io.ErrUnexpectedEOF), 400, "read boot upload: unexpected EOF"},
		{errors.New("something else"), 500, "something else"},
	} {
		status, _, msg := classify(tc.err)
		if status != tc.status || msg != tc.msg {
			t.Errorf("classify(%v) = %d %q, want %d %q", tc.err, status, msg, tc.status, tc.msg)
		}
	}
}

func TestRequestRoutesWritesThroughLog(t *testing.T) {
	data := &fakeData{}
	p := &phases{}
	p.set(lifecycle.Ready, 1)
	base := startGateway(t, data, p)
	r := do(t, "POST", base+"/db/request", `["SELECT 1"]`)
	if r.body != `{"results":[{"columns":["1"],"types":["integer"],"values":[[1]]}]}` || data.calls.Load() != 1 {
		t.Fatalf("read-only request: %q after %d calls", r.body, data.calls.Load())
	}
	r = do(t, "POST", base+"/db/request?raft_index", `["SELECT 1","INSERT INTO t VALUES(1)"]`)
	if r.body != `{"results":[{"last_insert_id":1,"rows_affected":1},{"last_insert_id":1,"rows_affected":1}],"raft_index":7}` || data.calls.Load() != 3 {
		t.Fatalf("mixed request: %q after %d calls", r.body, data.calls.Load())
	}
}

func TestDataErrorsMapToStatus(t *testing.T) {
	data := &fakeData{err: fmt.Errorf("%w: dropped", replica.ErrNoLeader)}
	p := &phases{}
	p.set(lifecycle.Ready, 1)
	base := startGateway(t, data, p)
	if r := do(t, "POST", base+"/db/execute", `["INSERT INTO t VALUES(1)"]`); r.status != 503 || r.body != "leader not found\n" {
		t.Fatalf("got %d %q", r.status, r.body)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).WithDefaults().Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("empty config: %v", err)
	}
	if err := (Config{AdvAddr: "x:1"}).WithDefaults().Validate(); err != nil {
		t.Fatal(err)
	}
}

// API.md 1.1: every route answers; the ones not served yet say so, and a
// wrong method is 405 as in rqlite.
func TestRoutingTable(t *testing.T) {
	data := &fakeData{}
	p := &phases{}
	p.set(lifecycle.Ready, 1)
	base := startGateway(t, data, p)
	do(t, "POST", base+"/db/execute", `["INSERT INTO t VALUES(1)"]`)
	for _, tc := range []struct {
		method, path string
		status       int
		contains     string
	}{
		{"GET", "/", 302, ""},
		{"GET", "/db/backup", 200, "SQLite format 3"},
		{"GET", "/db/backup?fmt=xml", 400, "invalid backup format"},
		{"GET", "/db/load", 405, ""},
		{"POST", "/boot", 200, ""},
		{"DELETE", "/remove", 400, "want {\"id\""},
		{"POST", "/join", 400, "invalid join request"},
		{"GET", "/join", 405, ""},
		{"POST", "/db/backup", 405, ""},
		{"GET", "/db/load", 405, ""},
		{"GET", "/boot", 405, ""},
		{"GET", "/snapshot", 405, ""},
		{"POST", "/snapshot", 200, ""},
		{"POST", "/snapshot?trailing_logs=0", 204, ""},
		{"POST", "/snapshot?trailing_logs=x", 400, "trailing_logs is not a valid integer"},
		{"POST", "/reap", 200, `{"snapshots_reaped":0,"wals_checkpointed":1}`},
		{"GET", "/remove", 405, ""},
		{"GET", "/debug/vars", 200, `"num_execute":1`},
		{"GET", "/debug/vars?key=http", 200, `"num_execute":1`},
		{"GET", "/debug/vars?key=nope", 404, ""},
		{"GET", "/debug/pprof/", 200, "goroutine"},
		{"GET", "/db/sql?q=SELECT+datetime('now')", 200, `"rewritten":"SELECT datetime(24`},
		{"GET", "/status?key=store.raft.state", 200, `"Leader"`},
		{"GET", "/status?key=no.such", 404, ""},
	} {
		r := do(t, tc.method, base+tc.path, "")
		if r.status != tc.status || !strings.Contains(r.body, tc.contains) {
			t.Errorf("%s %s: %d %.200q, want %d containing %q", tc.method, tc.path, r.status, r.body, tc.status, tc.contains)
		}
	}
}

// A body is read to its declared length: one cut short is invalid JSON,
// whole or chunked (no declared length) bodies parse alike.
func TestDeclaredBodyLength(t *testing.T) {
	data := &fakeData{}
	p := &phases{}
	p.set(lifecycle.Ready, 1)
	base := startGateway(t, data, p)
	addr := strings.TrimPrefix(base, "http://")
	send := func(raw string) string {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatal(err)
		}
		_ = c.(*net.TCPConn).CloseWrite()
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return fmt.Sprintf("%d %s", resp.StatusCode, b)
	}
	body := `["SELECT 1"]`
	if got := send(fmt.Sprintf("POST /db/query HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(body)+5, body)); got != "400 invalid JSON body\n" {
		t.Fatalf("short body: %q", got)
	}
	whole := send(fmt.Sprintf("POST /db/query HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body))
	chunked := send(fmt.Sprintf("POST /db/query HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(body), body))
	if !strings.HasPrefix(whole, "200 ") || !strings.HasPrefix(chunked, "200 ") {
		t.Fatalf("whole body %q, chunked %q", whole, chunked)
	}
	if n := data.calls.Load(); n != 2 {
		t.Fatalf("%d queries reached the data path, want 2", n)
	}
}
