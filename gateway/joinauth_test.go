package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiffdb/skiff/actors/lifecycle"
	"github.com/skiffdb/skiff/actors/queue"
	"github.com/skiffdb/skiff/gateway/auth"
)

const joinCreds = `[
  {"username": "voter", "password": "pv", "perms": ["join"]},
  {"username": "ro",    "password": "pr", "perms": ["join-read-only"]},
  {"username": "rr",    "password": "pp", "perms": ["join-read-replica"]},
  {"username": "q",     "password": "pq", "perms": ["query"]},
  {"username": "bob",   "password": "pb", "perms": ["all"]},
  {"username": "*",                       "perms": ["status"]}
]`

func openStore(t testing.TB, creds string) *auth.Store {
	t.Helper()
	path := filepath.Join(t.TempDir(), "auth.json")
	if err := os.WriteFile(path, []byte(creds), 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := auth.Open(auth.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// runAuthGateway runs a gateway with store on its API port and serves its
// PeerHandler (the Raft port's routes) on a second server.
func runAuthGateway(t *testing.T, store *auth.Store) (g *Gateway, api, raft string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	data := &fakeData{}
	q, err := queue.New(queue.Config{}, data)
	if err != nil {
		t.Fatal(err)
	}
	p := &phases{}
	p.set(lifecycle.Ready, 1)
	g, err = New(Config{AdvAddr: ln.Addr().String(), Auth: store}, ln, data, q, p.st.Load)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _ = q.Run(ctx) }()
	go func() { done <- g.Run(ctx) }()
	peer := httptest.NewServer(g.PeerHandler())
	t.Cleanup(func() {
		peer.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return g, "http://" + ln.Addr().String(), peer.URL
}

// TestJoinAuth: a join needs join (voter) or join-read-only /
// join-read-replica (non-voter), as rqlite's cluster service asks, on the
// API's /join and /skiff/join and on the Raft port's /skiff/join; a
// refusal is a 401 whose body names the cause.
func TestJoinAuth(t *testing.T) {
	_, api, raft := runAuthGateway(t, openStore(t, joinCreds))
	voter := `{"id":"n2","addr":"127.0.0.1:1","voter":true}`
	noVoterFlag := `{"id":"n2","addr":"127.0.0.1:1"}`
	nonVoter := `{"id":"n2","addr":"127.0.0.1:1","voter":false}`
	for _, url := range []string{api + "/join", api + pathPeerJoin, raft + pathPeerJoin} {
		t.Run(url, func(t *testing.T) {
			for _, tc := range []struct {
				what, body, user, pass string
				refusal                string // empty: accepted
			}{
				{"anonymous voter", voter, "", "", "credentials required for join (start the joining node with -join-as <user>)"},
				{"anonymous non-voter", nonVoter, "", "", "credentials required for join-read-only"},
				{"wrong password", voter, "voter", "nope", "wrong username or password"},
				{"unknown user", voter, "eve", "pv", "wrong username or password"},
				{"query only", voter, "q", "pq", `user "q" lacks the join permission`},
				{"join", voter, "voter", "pv", ""},
				{"join, voter by default", noVoterFlag, "voter", "pv", ""},
				// rqlite asks join-read-only of a non-voter's join,
				// not join (cluster/service.go).
				{"join as non-voter", nonVoter, "voter", "pv", `user "voter" lacks the join-read-only permission`},
				{"join-read-only as voter", voter, "ro", "pr", `user "ro" lacks the join permission`},
				{"join-read-only by default voter", noVoterFlag, "ro", "pr", `user "ro" lacks the join permission`},
				{"join-read-only as non-voter", nonVoter, "ro", "pr", ""},
				{"join-read-replica as non-voter", nonVoter, "rr", "pp", ""},
				{"join-read-replica as voter", voter, "rr", "pp", `user "rr" lacks the join permission`},
				{"all as voter", voter, "bob", "pb", ""},
				{"all as non-voter", nonVoter, "bob", "pb", ""},
			} {
				r := doAuth(t, "POST", url, tc.body, tc.user, tc.pass)
				if tc.refusal == "" {
					if r.status != http.StatusOK {
						t.Errorf("%s: %d %q, want 200", tc.what, r.status, r.body)
					}
					continue
				}
				if r.status != http.StatusUnauthorized || r.www != `Basic realm="rqlite"` || !strings.Contains(r.body, tc.refusal) ||
					!strings.HasPrefix(r.body, "join refused by ") {
					t.Errorf("%s: %d %q %q, want 401 naming %q", tc.what, r.status, r.www, r.body, tc.refusal)
				}
			}
		})
	}
	// The body is read before the credentials are checked: it is bounded.
	big := `{"id":"n2","addr":"` + strings.Repeat("x", maxJoinBody) + `"}`
	if r := doAuth(t, "POST", raft+pathPeerJoin, big, "", ""); r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized join: %d %q", r.status, r.body)
	}
}

// TestNotifyAuth: a -bootstrap-expect node's metadata request that
// announces it (HeaderNotify) needs join, as rqlite's Notify does; the
// node records only authorized announcements. Without the header the
// Raft port's metadata needs no credentials (rqlite's GetNodeMeta).
func TestNotifyAuth(t *testing.T) {
	g, api, raft := runAuthGateway(t, openStore(t, joinCreds))
	get := func(base, user, pass, notify string) authReply {
		req, _ := http.NewRequest(http.MethodGet, base+pathPeerNode, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		if notify != "" {
			req.Header.Set(HeaderNotify, notify)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return authReply{status: resp.StatusCode, www: resp.Header.Get("WWW-Authenticate"), body: string(b)}
	}
	for _, base := range []string{api, raft} {
		if r := get(base, "", "", "7"); r.status != http.StatusUnauthorized || !strings.Contains(r.body, "credentials required for join") {
			t.Errorf("%s anonymous notify: %d %q", base, r.status, r.body)
		}
		if r := get(base, "ro", "pr", "7"); r.status != http.StatusUnauthorized || !strings.Contains(r.body, `user "ro" lacks the join permission`) {
			t.Errorf("%s join-read-only notify: %d %q", base, r.status, r.body)
		}
		if r := get(base, "voter", "pv", "x"); r.status != http.StatusBadRequest {
			t.Errorf("%s malformed notify: %d %q", base, r.status, r.body)
		}
	}
	if g.Notified(7) {
		t.Fatal("an unauthorized notify was recorded")
	}
	if r := get(raft, "voter", "pv", "7"); r.status != http.StatusOK {
		t.Fatalf("authorized notify: %d %q", r.status, r.body)
	}
	if !g.Notified(7) || g.Notified(8) {
		t.Fatalf("Notified(7) %v, Notified(8) %v", g.Notified(7), g.Notified(8))
	}
	// The kept IDs are bounded: a client with join credentials sending a
	// new ID each time stops being recorded at maxNotified.
	for id := uint64(100); id < 100+2*maxNotified; id++ {
		g.notify(id)
	}
	if !g.Notified(7) || !g.Notified(100) || g.Notified(100+2*maxNotified-1) {
		t.Fatal("notify IDs not bounded at maxNotified")
	}
	var meta NodeMeta
	r := get(raft, "", "", "")
	if err := json.Unmarshal([]byte(r.body), &meta); r.status != http.StatusOK || err != nil || meta.ReplicaID != 1 {
		t.Fatalf("anonymous metadata on the Raft port: %d %q %v", r.status, r.body, err)
	}
}

// TestAuthCounters: /debug/vars http authOK and authFail count permission
// checks, as rqlite's do (http/service.go).
func TestAuthCounters(t *testing.T) {
	_, api, raft := runAuthGateway(t, openStore(t, joinCreds))
	vars := func() (ok, fail float64) {
		r := doAuth(t, "GET", api+"/debug/vars?key=http", "", "", "")
		var m map[string]any
		if err := json.Unmarshal([]byte(r.body), &m); err != nil {
			t.Fatalf("vars: %d %q", r.status, r.body)
		}
		return m["authOK"].(float64), m["authFail"].(float64)
	}
	ok0, fail0 := vars() // this request counted itself as OK (`*` has status)
	want401Reply := func(r authReply) {
		t.Helper()
		if r.status != http.StatusUnauthorized {
			t.Fatalf("%d %q, want 401", r.status, r.body)
		}
	}
	want401Reply(doAuth(t, "POST", api+"/db/execute", `["SELECT 1"]`, "", ""))
	want401Reply(doAuth(t, "POST", raft+pathPeerJoin, `{"id":"n2","addr":"127.0.0.1:1"}`, "q", "pq"))
	if r := doAuth(t, "POST", raft+pathPeerJoin, `{"id":"n2","addr":"127.0.0.1:1"}`, "voter", "pv"); r.status != http.StatusOK {
		t.Fatalf("join: %d %q", r.status, r.body)
	}
	ok1, fail1 := vars()
	// +1 join, +1 the second /debug/vars; +2 refusals.
	if ok1-ok0 != 2 || fail1-fail0 != 2 {
		t.Fatalf("authOK %v -> %v, authFail %v -> %v; want +2 and +2", ok0, ok1, fail0, fail1)
	}
}

// TestAuthCountersAuthOff: with auth off requests skip the check, and
// authOK is derived from the routes' counts: every request passed.
func TestAuthCountersAuthOff(t *testing.T) {
	_, api, _ := runAuthGateway(t, nil)
	vars := func() (ok, fail float64) {
		r := doAuth(t, "GET", api+"/debug/vars?key=http", "", "", "")
		var m map[string]any
		if err := json.Unmarshal([]byte(r.body), &m); err != nil {
			t.Fatalf("vars: %d %q", r.status, r.body)
		}
		return m["authOK"].(float64), m["authFail"].(float64)
	}
	ok0, _ := vars()
	for range 3 {
		if r := doAuth(t, "POST", api+"/db/execute", `["SELECT 1"]`, "", ""); r.status != http.StatusOK {
			t.Fatalf("execute with auth off: %d %q", r.status, r.body)
		}
	}
	ok1, fail1 := vars()
	if ok1-ok0 != 3 || fail1 != 0 {
		t.Fatalf("authOK %v -> %v, authFail %v; want +3 and 0", ok0, ok1, fail1)
	}
}
