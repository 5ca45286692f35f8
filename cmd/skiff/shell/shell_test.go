package shell

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fakeNode answers like an rqlite node and records each request.
type fakeNode struct {
	t    *testing.T
	srv  *httptest.Server
	reqs []string // "METHOD path?query body"
	// replies by path: status and body.
	replies map[string]string
	status  map[string]int
}

func newFakeNode(t *testing.T) *fakeNode {
	f := &fakeNode{t: t, replies: map[string]string{}, status: map[string]int{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if user, pass, ok := r.BasicAuth(); ok && (user != "bob" || pass != "pw") {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		line := r.Method + " " + r.URL.Path
		if r.URL.RawQuery != "" {
			line += "?" + r.URL.RawQuery
		}
		if len(b) > 0 {
			line += " " + r.Header.Get("Content-Type") + " " + string(b)
		}
		f.reqs = append(f.reqs, line)
		w.Header().Set("X-Rqlite-Version", "v9.9.9")
		if st, ok := f.status[r.URL.Path]; ok {
			w.WriteHeader(st)
		}
		_, _ = io.WriteString(w, f.replies[r.URL.Path])
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeNode) config(t *testing.T) Config {
	host, port, err := net.SplitHostPort(f.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.Host = host
	c.Port, _ = strconv.Atoi(port)
	c.HistoryFile = ""
	return c
}

func TestExec(t *testing.T) {
	dir := t.TempDir()
	sqlite := filepath.Join(dir, "db.sqlite")
	if err := os.WriteFile(sqlite, []byte("SQLite format 3\x00rest"), 0o600); err != nil {
		t.Fatal(err)
	}
	dump := filepath.Join(dir, "dump.sql")
	if err := os.WriteFile(dump, []byte("CREATE TABLE t(x);"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		lines   []string
		path    string // the reply's path
		reply   string
		status  int
		wantReq string // the last request
		wantOut string
	}{
		{name: "select", lines: []string{"SELECT * FROM t;"}, path: "/db/request",
			reply:   `{"results":[{"columns":["x"],"types":["integer"],"values":[[1]]}]}`,
			wantReq: `POST /db/request?blob_array=&level=weak application/json ["SELECT * FROM t"]`,
			wantOut: "+---+\n| x |\n+---+\n| 1 |\n+---+\n"},
		{name: "insert", lines: []string{"INSERT INTO t", "VALUES(1);"}, path: "/db/request",
			reply:   `{"results":[{"last_insert_id":1,"rows_affected":1}]}`,
			wantReq: `POST /db/request?blob_array=&level=weak application/json ["INSERT INTO t\nVALUES(1)"]`,
			wantOut: "1 row affected\n"},
		{name: "statement error", lines: []string{"SELECT * FROM nope;"}, path: "/db/request",
			reply: `{"results":[{"error":"no such table: nope"}]}`, wantOut: "Error: no such table: nope\n"},
		{name: "request error", lines: []string{"SELECT 1;"}, path: "/db/request",
			reply: `{"results":[],"error":"stale read"}`, wantOut: "ERR! stale read\n"},
		{name: "http error", lines: []string{"SELECT 1;"}, path: "/db/request", status: 503,
			reply: `leader not found`, wantOut: "ERR! server responded with 503 Service Unavailable: leader not found\n"},
		{name: "timer and consistency", lines: []string{".timer on", ".consistency strong", "SELECT 1;"}, path: "/db/request",
			reply:   `{"results":[{"columns":["1"],"values":[[1]],"time":0.001}]}`,
			wantReq: `POST /db/request?blob_array=&level=strong&timings= application/json ["SELECT 1"]`,
			wantOut: "+---+\n| 1 |\n+---+\n| 1 |\n+---+\nRun Time: 0.001000 seconds\n"},
		{name: "consistency shown", lines: []string{".consistency"}, wantOut: "weak\n"},
		{name: "bad consistency", lines: []string{".consistency eventual"},
			wantOut: "ERR! invalid consistency 'eventual'. Use 'none', 'weak', 'linearizable', 'strong' or 'auto'\n"},
		{name: "bad timer", lines: []string{".timer maybe"}, wantOut: "ERR! invalid option 'maybe'. Use 'on' or 'off' (default)\n"},
		{name: "tables", lines: []string{".tables"}, path: "/db/query",
			reply: `{"results":[{"columns":["name"],"values":[["t"]]}]}`,
			wantReq: "GET /db/query?blob_array=&level=weak&q=SELECT+name+FROM+sqlite_master+WHERE+type%3D%27table%27+AND+tbl_name+NOT+LIKE+" +
				"%27%5C_%5C_skiff%5C_%25%27+ESCAPE+%27%5C%27",
			wantOut: "+------+\n| name |\n+------+\n| t    |\n+------+\n"},
		{name: "status key", lines: []string{".status store"}, path: "/status",
			reply: `{"store":{"ready":true},"http":{"auth":"disabled"}}`, wantReq: "GET /status", wantOut: "store:\n  ready: true\n"},
		{name: "nodes all", lines: []string{".nodes all"}, path: "/nodes",
			reply: `{"1":{"id":"1","leader":true}}`, wantReq: "GET /nodes?nonvoters=", wantOut: "1:\n  id: 1\n  leader: true\n"},
		{name: "ready", lines: []string{".ready"}, path: "/readyz", reply: "[+]node ok", wantReq: "GET /readyz", wantOut: "ready\n"},
		{name: "not ready", lines: []string{".ready"}, path: "/readyz", status: 503, wantOut: "not ready\n"},
		{name: "backup", lines: []string{".backup " + filepath.Join(dir, "out.db")}, path: "/db/backup", reply: "SQLite format 3\x00",
			wantReq: "GET /db/backup", wantOut: "backup file written successfully\n"},
		{name: "backup without file", lines: []string{".backup"}, wantOut: "ERR! please specify an output file for the backup\n"},
		{name: "dump tables", lines: []string{".dump " + filepath.Join(dir, "out.sql") + " a b"}, path: "/db/backup", reply: "BEGIN;",
			wantReq: "GET /db/backup?fmt=sql&tables=a%2Cb", wantOut: "SQL text file written successfully\n"},
		{name: "restore sqlite", lines: []string{".restore " + sqlite}, path: "/db/load", reply: `{"results":[]}`,
			wantReq: "POST /db/load application/octet-stream SQLite format 3\x00rest", wantOut: "Database restored successfully.\n"},
		{name: "restore dump", lines: []string{".restore " + dump}, path: "/db/load", reply: `{"results":[{}]}`,
			wantReq: "POST /db/load text/plain CREATE TABLE t(x);", wantOut: "Database restored successfully.\n"},
		{name: "restore dump error", lines: []string{".restore " + dump}, path: "/db/load", reply: `{"results":[{"error":"table t already exists"}]}`,
			wantOut: "Error: table t already exists\n"},
		{name: "boot", lines: []string{".boot " + sqlite}, path: "/boot", reply: "",
			wantReq: "POST /boot application/octet-stream SQLite format 3\x00rest", wantOut: "Node booted successfully.\n"},
		{name: "boot not sqlite", lines: []string{".boot " + dump}, wantOut: "ERR! " + dump + " is not a valid SQLite file\n"},
		{name: "remove", lines: []string{".remove 3"}, path: "/remove", wantReq: `DELETE /remove application/json {"id":"3"}`},
		{name: "snapshot", lines: []string{".snapshot 10"}, path: "/snapshot", wantReq: "POST /snapshot?trailing_logs=10"},
		{name: "stepdown", lines: []string{".stepdown 2"}, path: "/leader", wantReq: `POST /leader?wait=true application/json {"id":"2"}`},
		{name: "unknown", lines: []string{".nope"}, wantOut: "ERR! unknown command '.nope'; enter \".help\" for usage hints\n"},
		{name: "help", lines: []string{".help"}, wantOut: strings.Join(sortedHelp(), "\n") + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeNode(t)
			if tc.path != "" {
				f.replies[tc.path] = tc.reply
				if tc.status != 0 {
					f.status[tc.path] = tc.status
				}
			}
			var out bytes.Buffer
			s, err := New(f.config(t), &out)
			if err != nil {
				t.Fatal(err)
			}
			var sp Splitter
			for _, l := range tc.lines {
				for _, in := range sp.Feed(l) {
					if s.Exec(context.Background(), in) {
						t.Fatal("quit")
					}
				}
			}
			if out.String() != tc.wantOut {
				t.Errorf("output:\n got %q\nwant %q", out.String(), tc.wantOut)
			}
			if tc.wantReq != "" {
				if len(f.reqs) == 0 || f.reqs[len(f.reqs)-1] != tc.wantReq {
					t.Errorf("requests %q, want last %q", f.reqs, tc.wantReq)
				}
			}
		})
	}
}

func sortedHelp() []string {
	var b bytes.Buffer
	s := &Shell{out: &b}
	_, _ = s.dot(context.Background(), Input{Kind: KindDot, Cmd: "help"})
	return strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
}

func TestHelpSorted(t *testing.T) {
	h := sortedHelp()
	if len(h) != len(helpLines) {
		t.Fatalf("%d help lines, want %d", len(h), len(helpLines))
	}
	for i := 1; i < len(h); i++ {
		if h[i-1] > h[i] {
			t.Errorf("help not sorted at %q", h[i])
		}
	}
}

// TestRunScript runs the non-terminal loop: statements from a reader,
// output without prompts, exit at .exit.
func TestRunScript(t *testing.T) {
	f := newFakeNode(t)
	f.replies["/db/request"] = `{"results":[{"rows_affected":2}]}`
	var out bytes.Buffer
	in := strings.NewReader("INSERT INTO t VALUES(1),\n(2);\n.exit\nSELECT 1;\n")
	if err := Run(context.Background(), f.config(t), in, &out); err != nil {
		t.Fatal(err)
	}
	if want := "2 rows affected\nbye~\n"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
	// One GET /status at connect, one request; nothing after .exit.
	if len(f.reqs) != 2 || f.reqs[0] != "GET /status" {
		t.Errorf("requests %q", f.reqs)
	}
}

func TestAuthAndConnect(t *testing.T) {
	f := newFakeNode(t)
	cfg := f.config(t)
	cfg.Credentials = "bob:wrong"
	s, err := New(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(context.Background()); err == nil || err.Error() != "unauthorized" {
		t.Fatalf("Connect with a wrong password: %v", err)
	}
	cfg.Credentials = "bob:pw"
	s, err = New(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.Banner(), "running version v9.9.9") {
		t.Errorf("banner %q", s.Banner())
	}
}

// TestAlternatives: a refused first host falls back to the next, which
// becomes the prompt's host.
func TestAlternatives(t *testing.T) {
	f := newFakeNode(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().(*net.TCPAddr)
	ln.Close()
	cfg := f.config(t)
	live := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
	cfg.Host, cfg.Port, cfg.Alternatives = "127.0.0.1", dead.Port, []string{live}
	s, err := New(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.Prompt() != live+"> " {
		t.Errorf("prompt %q, want %q", s.Prompt(), live+"> ")
	}
}

func TestConnectRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cfg := DefaultConfig()
	cfg.Port = port
	s, err := New(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Connect(context.Background())
	if want := "Unable to connect to rqlited at http://127.0.0.1:" + strconv.Itoa(port) + " - is it running?"; err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
}

func TestConfig(t *testing.T) {
	ok := DefaultConfig()
	ok.Host, ok.Port, ok.Scheme = "127.0.0.1", 4001, "http"
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Config){
		"scheme":      func(c *Config) { c.Scheme = "ftp" },
		"host":        func(c *Config) { c.Host = "" },
		"port":        func(c *Config) { c.Port = 0 },
		"prefix":      func(c *Config) { c.Prefix = "x" },
		"credentials": func(c *Config) { c.Credentials = "bob" },
		"client key":  func(c *Config) { c.ClientCert = "c.pem" },
		"timeout":     func(c *Config) { c.Timeout = 0 },
		"alternative": func(c *Config) { c.Alternatives = []string{"nohost"} },
	} {
		c := ok
		mut(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, c)
		}
	}
	c := ok
	for in, want := range map[string]string{"https://db.example:4443": "https db.example 4443", "10.0.0.1": "http 10.0.0.1 4001", "h:1": "http h 1"} {
		c.Scheme, c.Port = "http", 4001
		if err := c.ApplyHostEnv(in); err != nil {
			t.Fatal(err)
		}
		if got := c.Scheme + " " + c.Host + " " + strconv.Itoa(c.Port); got != want {
			t.Errorf("RQLITE_HOST %q: got %q, want %q", in, got, want)
		}
	}
}
