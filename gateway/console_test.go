package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/skiffdb/skiff/actors/lifecycle"
)

// TestConsoleRoutes: /console redirects to /console/, the assets are
// served with their types, and the peer relay only reaches members.
func TestConsoleRoutes(t *testing.T) {
	p := &phases{}
	p.set(lifecycle.Ready, 1)
	base := startGateway(t, &fakeData{}, p)
	for _, tc := range []struct {
		method, path string
		status       int
		ctype        string
		contains     string
	}{
		{"GET", "/console/", 200, "text/html; charset=utf-8", "<title>Skiff console</title>"},
		{"GET", "/console/index.html", 301, "", ""},
		{"GET", "/console/console.js", 200, "text/javascript; charset=utf-8", "db/request"},
		{"GET", "/console/console.css", 200, "text/css; charset=utf-8", "progress"},
		{"POST", "/console/", 405, "", ""},
		{"GET", "/console/peer/status?id=nobody", 404, "text/plain; charset=utf-8", "no member with that id or address"},
		{"GET", "/console/peer/status", 404, "text/plain; charset=utf-8", "no member with that id or address"},
		{"POST", "/console/peer/status?id=n1", 405, "", ""},
	} {
		r := do(t, tc.method, base+tc.path, "")
		if r.status != tc.status || (tc.ctype != "" && r.ctype != tc.ctype) || !strings.Contains(r.body, tc.contains) {
			t.Errorf("%s %s: %d %q %.100q; want %d %q containing %q", tc.method, tc.path, r.status, r.ctype, r.body, tc.status, tc.ctype, tc.contains)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/console", nil)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/console/" {
		t.Fatalf("GET /console: %d Location %q, want 301 /console/", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestConsolePeerStatusRelays: a member's /status comes back through the
// node the browser is on, with the caller's credentials passed along.
func TestConsolePeerStatusRelays(t *testing.T) {
	var gotAuth string
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		if r.URL.Path != "/status" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write([]byte(`{"lifecycle":{"state":"recovering"}}`))
	}))
	defer peer.Close()
	p := &phases{}
	st := &lifecycle.State{Phase: lifecycle.Ready, LeaderReplicaID: 1, NodeReady: true,
		Identity: lifecycle.Identity{NodeID: "n1", ReplicaID: 1, RaftAddr: "127.0.0.1:4002", APIAddr: "127.0.0.1:4001", Voter: true},
		Members: []lifecycle.Member{
			{NodeID: "n1", ReplicaID: 1, RaftAddr: "127.0.0.1:4002", APIAddr: "127.0.0.1:4001", Voter: true},
			{NodeID: "n2", ReplicaID: 2, RaftAddr: "127.0.0.1:4004", APIAddr: strings.TrimPrefix(peer.URL, "http://"), Voter: true},
		}}
	p.st.Store(st)
	base := startGateway(t, &fakeData{}, p)
	req, _ := http.NewRequest(http.MethodGet, base+"/console/peer/status?id=n2", nil)
	req.SetBasicAuth("alice", "pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b := make([]byte, 200)
	n, _ := resp.Body.Read(b)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json; charset=utf-8" || string(b[:n]) != `{"lifecycle":{"state":"recovering"}}` {
		t.Fatalf("relay: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), b[:n])
	}
	if !strings.HasPrefix(gotAuth, "Basic ") {
		t.Fatalf("the peer got Authorization %q, want the caller's Basic credentials", gotAuth)
	}
}
