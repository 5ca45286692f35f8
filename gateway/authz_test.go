package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffdb/skiff/actors/lifecycle"
	"github.com/skiffdb/skiff/gateway/auth"
	"github.com/skiffdb/skiff/gateway/metrics"
)

// authRoutes is API.md 1.1's table: a request to each route and the perms
// it needs.
var authRoutes = []struct {
	method, path, body string
	perms              []auth.Perm
}{
	{"POST", "/db/execute", `["INSERT INTO t VALUES(1)"]`, []auth.Perm{auth.PermExecute}},
	{"GET", "/db/query?q=SELECT+1", "", []auth.Perm{auth.PermQuery}},
	{"POST", "/db/request", `["SELECT 1"]`, []auth.Perm{auth.PermQuery, auth.PermExecute}},
	{"GET", "/db/backup", "", []auth.Perm{auth.PermBackup}},
	{"POST", "/db/load", "", []auth.Perm{auth.PermLoad}},
	{"GET", "/db/sql?q=SELECT+1", "", []auth.Perm{auth.PermQuery}},
	{"POST", "/boot", "", []auth.Perm{auth.PermLoad}},
	{"POST", "/snapshot", "", []auth.Perm{auth.PermSnapshot}},
	{"POST", "/reap", "", []auth.Perm{auth.PermSnapshot}},
	{"DELETE", "/remove", `{"id":"n9"}`, []auth.Perm{auth.PermRemove}},
	{"GET", "/status", "", []auth.Perm{auth.PermStatus}},
	{"GET", "/nodes", "", []auth.Perm{auth.PermStatus}},
	{"GET", "/leader", "", []auth.Perm{auth.PermLeaderOps}},
	{"GET", "/readyz", "", []auth.Perm{auth.PermReady}},
	{"GET", "/licenses", "", []auth.Perm{auth.PermStatus}},
	{"GET", "/debug/vars", "", []auth.Perm{auth.PermStatus}},
	{"GET", "/metrics", "", []auth.Perm{auth.PermStatus}},
	{"GET", "/debug/pprof/", "", []auth.Perm{auth.PermStatus}},
	{"GET", "/console/", "", []auth.Perm{auth.PermUI}},
	{"GET", "/console/console.js", "", []auth.Perm{auth.PermUI}},
	{"GET", "/console", "", []auth.Perm{auth.PermUI}},
	{"POST", "/join", `{"id":"n2","addr":"127.0.0.1:1"}`, []auth.Perm{auth.PermJoin}},
	{"POST", pathPeerJoin, `{"id":"n2","addr":"127.0.0.1:1"}`, []auth.Perm{auth.PermJoin}},
	{"GET", pathPeerNode, "", []auth.Perm{auth.PermStatus}},
}

var allPerms = []auth.Perm{auth.PermExecute, auth.PermQuery, auth.PermStatus, auth.PermReady,
	auth.PermBackup, auth.PermLoad, auth.PermSnapshot, auth.PermRemove, auth.PermJoin,
	auth.PermJoinReadOnly, auth.PermLeaderOps, auth.PermUI}

type cred struct {
	Username string   `json:"username"`
	Password string   `json:"password,omitempty"`
	Perms    []string `json:"perms"`
}

func permNames(ps []auth.Perm) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p)
	}
	return out
}

func userFor(ps []auth.Perm) string { return "u-" + strings.Join(permNames(ps), "+") }

// authGateway starts a gateway whose credentials give bob all, `*` nothing
// unless star says otherwise, and for each route a user with exactly its
// perms and, for each of its perms, a user with every perm but that one.
func authGateway(t *testing.T, star []string) string {
	t.Helper()
	creds := []cred{{Username: "bob", Password: "secret1", Perms: []string{"all"}}, {Username: "*", Perms: star}}
	seen := map[string]bool{}
	for _, rt := range authRoutes {
		if u := userFor(rt.perms); !seen[u] {
			seen[u] = true
			creds = append(creds, cred{Username: u, Password: "pw", Perms: permNames(rt.perms)})
		}
		for _, missing := range rt.perms {
			u := "not-" + string(missing)
			if seen[u] {
				continue
			}
			seen[u] = true
			var rest []string
			for _, p := range allPerms {
				if p != missing {
					rest = append(rest, string(p))
				}
			}
			creds = append(creds, cred{Username: u, Password: "pw", Perms: rest})
		}
	}
	b, _ := json.Marshal(creds)
	path := filepath.Join(t.TempDir(), "auth.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := auth.Open(auth.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	p := &phases{}
	p.set(lifecycle.Ready, 1)
	m, err := metrics.New(metrics.Config{State: p.st.Load})
	if err != nil {
		t.Fatal(err)
	}
	return startGatewayCfg(t, Config{Auth: store, Metrics: m}, &fakeData{}, p)
}

type authReply struct {
	status int
	www    string
	body   string
	header http.Header
}

func doAuth(t *testing.T, method, url, body, user, pass string) authReply {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	c := &http.Client{Timeout: 60 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return authReply{resp.StatusCode, resp.Header.Get("WWW-Authenticate"), string(b), resp.Header}
}

func check401(t *testing.T, what string, r authReply) {
	t.Helper()
	if r.status != http.StatusUnauthorized || r.www != `Basic realm="rqlite"` || r.body != "" {
		t.Errorf("%s: %d %q %q, want 401, Basic realm=\"rqlite\", empty body", what, r.status, r.www, r.body)
	}
}

// check401Route is check401, except that a join's 401 names its cause in
// the body (TestJoinAuth) for the joiner to log.
func check401Route(t *testing.T, path, what string, r authReply) {
	t.Helper()
	if path == "/join" || path == pathPeerJoin {
		if r.status != http.StatusUnauthorized || r.www != `Basic realm="rqlite"` || !strings.HasPrefix(r.body, "join refused") {
			t.Errorf("%s: %d %q %q, want 401 naming the cause", what, r.status, r.www, r.body)
		}
		return
	}
	check401(t, what, r)
}

func TestAuthEveryRoute(t *testing.T) {
	base := authGateway(t, nil)
	for _, rt := range authRoutes {
		t.Run(rt.method+" "+rt.path, func(t *testing.T) {
			url := base + rt.path
			check401Route(t, rt.path, "anonymous", doAuth(t, rt.method, url, rt.body, "", ""))
			check401Route(t, rt.path, "wrong password", doAuth(t, rt.method, url, rt.body, "bob", "secret2"))
			check401Route(t, rt.path, "unknown user", doAuth(t, rt.method, url, rt.body, "eve", "secret1"))
			for _, missing := range rt.perms {
				check401Route(t, rt.path, "without "+string(missing), doAuth(t, rt.method, url, rt.body, "not-"+string(missing), "pw"))
			}
			if r := doAuth(t, rt.method, url, rt.body, userFor(rt.perms), "pw"); r.status == http.StatusUnauthorized || r.www != "" {
				t.Errorf("user with %v: %d %q", rt.perms, r.status, r.www)
			}
			if r := doAuth(t, rt.method, url, rt.body, "bob", "secret1"); r.status == http.StatusUnauthorized {
				t.Errorf("bob (all): %d", r.status)
			}
		})
	}
}

func TestAuthStarAndFreeRoutes(t *testing.T) {
	base := authGateway(t, []string{"status", "ready"})
	for _, path := range []string{"/readyz", "/status", "/nodes"} {
		if r := doAuth(t, "GET", base+path, "", "", ""); r.status == http.StatusUnauthorized {
			t.Errorf("anonymous %s with * status,ready: %d", path, r.status)
		}
	}
	// A perm `*` has needs no password, even a wrong one.
	if r := doAuth(t, "GET", base+"/readyz", "", "bob", "nope"); r.status == http.StatusUnauthorized {
		t.Errorf("wrong password on a * route: %d", r.status)
	}
	check401(t, "anonymous execute", doAuth(t, "POST", base+"/db/execute", `["SELECT 1"]`, "", ""))
	// Routes without a perm: the redirect, a 404, and the CORS preflight.
	if r := doAuth(t, "GET", base+"/", "", "", ""); r.status != http.StatusFound {
		t.Errorf("/: %d", r.status)
	}
	if r := doAuth(t, "GET", base+"/nope", "", "", ""); r.status != http.StatusNotFound {
		t.Errorf("/nope: %d", r.status)
	}
	r := doAuth(t, "OPTIONS", base+"/db/execute", "", "", "")
	if r.status != http.StatusOK || r.header.Get("Access-Control-Allow-Headers") != "Content-Type, Authorization" ||
		r.header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("OPTIONS: %d %v", r.status, r.header)
	}
	if r := doAuth(t, "GET", base+"/status?key=http.auth", "", "", ""); r.body != `"enabled"` && strings.TrimSpace(r.body) != `"enabled"` {
		t.Errorf("http.auth: %d %q", r.status, r.body)
	}
}

func TestAuthDisabledStatus(t *testing.T) {
	p := &phases{}
	p.set(lifecycle.Ready, 1)
	base := startGateway(t, &fakeData{}, p)
	if r := doAuth(t, "GET", base+"/status?key=http.auth", "", "", ""); strings.TrimSpace(r.body) != `"disabled"` {
		t.Errorf("http.auth: %d %q", r.status, r.body)
	}
	if r := doAuth(t, "POST", base+"/db/execute", `["SELECT 1"]`, "", ""); r.status == http.StatusUnauthorized || r.www != "" {
		t.Errorf("auth off: %d %q", r.status, r.www)
	}
}

// TestRoutePermsCoversTable: every route of the table needs what
// authRoutes says, and nothing else is guarded.
func TestRoutePermsCoversTable(t *testing.T) {
	for _, rt := range authRoutes {
		path, _, _ := strings.Cut(rt.path, "?")
		got := routePerms(path)
		if strings.Join(permNames(got), ",") != strings.Join(permNames(rt.perms), ",") {
			t.Errorf("%s: %v, want %v", path, got, rt.perms)
		}
	}
	for _, p := range []string{"/", "/nope", "/dbx"} {
		if got := routePerms(p); got != nil {
			t.Errorf("%s: %v, want none", p, got)
		}
	}
}
