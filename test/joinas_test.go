package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rqlite/gorqlite"
)

// joinAuthFile is every member's -auth file in the secured-cluster tests
// (API.md 1.12: the file is per node; each checks its own). `*` holds
// status and ready, which the harness polls anonymously.
const joinAuthFile = `[
  {"username": "admin",   "password": "adminpw", "perms": ["all"]},
  {"username": "joiner",  "password": "joinpw",  "perms": ["join"]},
  {"username": "replica", "password": "replpw",  "perms": ["join-read-only"]},
  {"username": "reader",  "password": "readpw",  "perms": ["query"]},
  {"username": "*",                              "perms": ["status", "ready"]}
]`

// secure gives m the shared credentials file and its flags.
func secure(t *testing.T, m *member, flags ...string) {
	t.Helper()
	path := filepath.Join(m.dir, "auth.json")
	if err := os.WriteFile(path, []byte(joinAuthFile), 0o600); err != nil {
		t.Fatal(err)
	}
	m.setFlags(append([]string{"-auth", path}, flags...)...)
}

// waitMemberExit waits for m to exit and returns its log, failing the test if it
// does not within timeout.
func waitMemberExit(t *testing.T, m *member, timeout time.Duration) string {
	t.Helper()
	select {
	case <-m.proc.done:
	case <-time.After(timeout):
		m.dumpLogs()
		t.Fatalf("%s did not exit within %s", m.id, timeout)
	}
	b, err := os.ReadFile(m.proc.logPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// wantRefusedStart: m exited 1 and its log names every one of causes.
func wantRefusedStart(t *testing.T, m *member, timeout time.Duration, causes ...string) {
	t.Helper()
	log := waitMemberExit(t, m, timeout)
	if code := m.proc.exitCode(); code != 1 {
		t.Errorf("%s: exit %d, want 1", m.id, code)
	}
	for _, c := range causes {
		if !strings.Contains(log, c) {
			m.dumpLogs()
			t.Errorf("%s: the log does not name %q", m.id, c)
		}
	}
}

// waitRowsAs polls m with the given credentials at level=none until t
// holds want (the rows' JSON values), as waitRows does anonymously.
func waitRowsAs(t *testing.T, m *member, user, pass, want string) {
	t.Helper()
	deadline := time.Now().Add(catchUpTimeout)
	var r response
	for time.Now().Before(deadline) {
		r = authDo(t, m.node, "GET", "/db/query?level=none&q=SELECT+v+FROM+t+ORDER+BY+id", "", user, pass)
		if r.status == http.StatusOK && strings.Contains(string(r.body), want) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never held %s: last %s", m.id, want, r)
}

// httpVars reads /debug/vars http with admin's credentials.
func httpVars(t *testing.T, m *member) map[string]float64 {
	t.Helper()
	r := authDo(t, m.node, "GET", "/debug/vars?key=http", "", "admin", "adminpw")
	var v map[string]any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("/debug/vars?key=http: %s", r)
	}
	out := map[string]float64{}
	for _, k := range []string{"authOK", "authFail"} {
		f, ok := v[k].(float64)
		if !ok {
			t.Fatalf("/debug/vars http.%s missing: %s", k, r)
		}
		out[k] = f
	}
	return out
}

// TestJoinAsCluster: a cluster with -auth on every node (API.md 1.12,
// "Joining a secured cluster"; API.md 5, -join-as). Joins through the Raft
// address and the API URL (API.md 5, -join) carry the -join-as user's
// credentials; a join without credentials, or by a user without the
// permission the join needs (join for a voter, join-read-only for a read
// replica), is refused and the joiner exits naming the cause. Writes
// through a follower, with and without ?redirect (API.md 1.7), need the
// client's own execute permission on each node it talks to; gorqlite with
// a user:pass@ URL (API.md 4.1) works against the secured cluster.
func TestJoinAsCluster(t *testing.T) {
	c := &cluster{t: t}
	n1 := c.add("n1")
	secure(t, n1)
	n1.start()
	n1.waitReady(readyTimeout)
	fails0 := httpVars(t, n1)["authFail"]

	// No -join-as: refused by n1, the joiner exits saying why.
	anon := &member{node: newNode(t), id: "anon"}
	secure(t, anon, "-join", n1.raftAddr, "-join-attempts", "2", "-join-interval", "100ms")
	anon.launch()
	wantRefusedStart(t, anon, clusterTimeout, "join failed after 2 attempts", "credentials required for join",
		"start the joining node with -join-as <user>", "this node has no -join-as")
	if got := httpVars(t, n1)["authFail"]; got < fails0+2 {
		t.Errorf("n1 authFail %v after two refused joins, was %v", got, fails0)
	}

	// join-read-only may not add a voter (rqlite's cluster service).
	roVoter := &member{node: newNode(t), id: "ro-voter"}
	secure(t, roVoter, "-join-as", "replica", "-join", n1.apiURL(), "-join-attempts", "1")
	roVoter.launch()
	wantRefusedStart(t, roVoter, clusterTimeout, `user \"replica\" lacks the join permission`, `this node sent -join-as user \"replica\"`)

	// With -join-as joiner (join), through the Raft address and the API URL.
	n2 := c.add("n2")
	secure(t, n2, "-join-as", "joiner", "-join", n1.raftAddr)
	n3 := c.add("n3")
	secure(t, n3, "-join-as", "joiner", "-join", n1.apiURL())
	t.Cleanup(c.stopAll)
	for _, m := range c.ms[1:] {
		m.start()
	}
	for _, m := range c.ms[1:] {
		m.waitReady(clusterTimeout)
	}
	voters := c.ids()
	c.waitMembers(c.ms, voters, nil)

	// join-read-only adds a read replica, through a follower.
	n4 := c.add("n4")
	secure(t, n4, "-join-as", "replica", "-raft-non-voter", "-join", n2.raftAddr)
	n4.start()
	n4.waitReady(clusterTimeout)
	leader := c.byID(c.waitMembers(c.ms, voters, []string{"n4"}))
	follower := others(c.ms, leader, n4)[0]

	if r := authDo(t, leader.node, "POST", "/db/execute", createT, "admin", "adminpw"); r.status != http.StatusOK {
		t.Fatalf("CREATE TABLE: %s", r)
	}
	// A follower never grants more than the client's own permissions:
	// it checks its own -auth file before anything else, so a
	// query-only user is refused there, redirect or not (API.md 1.7).
	insert := `["INSERT INTO t(v) VALUES('x')"]`
	want401(t, "reader execute on a follower", authDo(t, follower.node, "POST", "/db/execute", insert, "reader", "readpw"))
	want401(t, "reader execute?redirect on a follower", authDo(t, follower.node, "POST", "/db/execute?redirect", insert, "reader", "readpw"))
	want401(t, "anonymous execute on the read replica", authDo(t, n4.node, "POST", "/db/execute", insert, "", ""))
	want401(t, "admin with a wrong password on a follower", authDo(t, follower.node, "POST", "/db/execute", insert, "admin", "readpw"))

	// admin writes through the follower (proposed through Raft there)
	// and through the read replica.
	for i, m := range []*member{follower, n4} {
		if r := authDo(t, m.node, "POST", "/db/execute", fmt.Sprintf(`["INSERT INTO t(v) VALUES('w%d')"]`, i), "admin", "adminpw"); r.status != http.StatusOK ||
			!strings.Contains(string(r.body), `"rows_affected":1`) {
			t.Fatalf("admin write via %s: %s", m.id, r)
		}
	}
	// ?redirect: 301 to the leader; the leader checks the credentials
	// again, from its own file.
	r := authDo(t, follower.node, "POST", "/db/execute?redirect", `["INSERT INTO t(v) VALUES('w2')"]`, "admin", "adminpw")
	loc := r.header.Get("Location")
	if r.status != http.StatusMovedPermanently || loc != leader.apiURL()+"/db/execute?redirect" {
		t.Fatalf("admin execute?redirect on a follower: %s, Location %q; want 301 to %s", r, loc, leader.apiURL())
	}
	post := func(user, pass string) response {
		req, _ := http.NewRequest(http.MethodPost, loc, strings.NewReader(`["INSERT INTO t(v) VALUES('w2')"]`))
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := leader.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return response{status: resp.StatusCode, header: resp.Header}
	}
	want401(t, "the redirect target without credentials", post("", ""))
	want401(t, "the redirect target as reader", post("reader", "readpw"))
	if r := post("admin", "adminpw"); r.status != http.StatusOK {
		t.Fatalf("admin at the redirect target: %d", r.status)
	}
	for _, m := range c.ms {
		waitRowsAs(t, m, "admin", "adminpw", `[["w0"],["w1"],["w2"]]`)
		waitRowsAs(t, m, "reader", "readpw", `[["w0"],["w1"],["w2"]]`)
	}

	// gorqlite with credentials in the URL, against a follower: its
	// discovery (/status, /nodes), writes and reads all authenticate.
	client := &http.Client{Timeout: requestTimeout}
	t.Cleanup(client.CloseIdleConnections)
	conn, err := gorqlite.OpenWithClient("http://admin:adminpw@"+follower.httpAddr+"/", client)
	if err != nil {
		t.Fatalf("gorqlite Open: %v", err)
	}
	defer conn.Close()
	if l, err := conn.Leader(); err != nil || l != leader.httpAddr {
		t.Errorf("gorqlite Leader() = %q, %v; want %q", l, err, leader.httpAddr)
	}
	if wr, err := conn.WriteOne("INSERT INTO t(v) VALUES('gorqlite')"); err != nil || wr.RowsAffected != 1 {
		t.Fatalf("gorqlite WriteOne: %+v, %v", wr, err)
	}
	if err := conn.SetConsistencyLevel(gorqlite.ConsistencyLevelStrong); err != nil {
		t.Fatal(err)
	}
	qr, err := conn.QueryOne("SELECT COUNT(*) FROM t WHERE v = 'gorqlite'")
	var count int64
	if err != nil || !qr.Next() || qr.Scan(&count) != nil || count != 1 {
		t.Fatalf("gorqlite QueryOne: %v, count %d", err, count)
	}
	// A query-only user reads, and cannot write.
	ro, err := gorqlite.OpenWithClient("http://reader:readpw@"+follower.httpAddr+"/", client)
	if err != nil {
		t.Fatalf("gorqlite Open as reader: %v", err)
	}
	defer ro.Close()
	if _, err := ro.WriteOne("INSERT INTO t(v) VALUES('nope')"); err == nil {
		t.Error("gorqlite write as reader succeeded")
	}
	if qr, err := ro.QueryOne("SELECT COUNT(*) FROM t"); err != nil || qr.NumRows() != 1 {
		t.Errorf("gorqlite query as reader: %v", err)
	}
}

// TestJoinAsBootstrapExpect: -bootstrap-expect on nodes with -auth (API.md
// 5, auto-clustering): every node announces itself to the others with its
// -join-as credentials (rqlite's Notify needs join), through Raft
// addresses and an API URL alike, and the cluster forms. A node without
// -join-as is never counted: no cluster forms, and every node's exit names
// the cause.
func TestJoinAsBootstrapExpect(t *testing.T) {
	t.Run("formed", func(t *testing.T) {
		c := &cluster{t: t}
		var addrs []string
		for i := 1; i <= 3; i++ {
			m := c.add(fmt.Sprintf("n%d", i))
			addrs = append(addrs, m.raftAddr)
		}
		addrs[2] = c.ms[2].apiURL()
		for _, m := range c.ms {
			secure(t, m, "-join-as", "joiner", "-bootstrap-expect", "3", "-join", strings.Join(addrs, ","))
			m.start()
		}
		t.Cleanup(c.stopAll)
		for _, m := range c.ms {
			m.waitReady(clusterTimeout)
		}
		leader := c.byID(c.waitMembers(c.ms, c.ids(), nil))
		if r := authDo(t, leader.node, "POST", "/db/execute", createT, "admin", "adminpw"); r.status != http.StatusOK {
			t.Fatalf("CREATE TABLE: %s", r)
		}
		for _, m := range c.ms {
			if r := authDo(t, m.node, "POST", "/db/execute", `["INSERT INTO t(v) VALUES('via-`+m.id+`')"]`, "admin", "adminpw"); r.status != http.StatusOK {
				t.Fatalf("write via %s: %s", m.id, r)
			}
		}
		for _, m := range c.ms {
			waitRowsAs(t, m, "reader", "readpw", `[["via-n1"],["via-n2"],["via-n3"]]`)
		}
	})
	t.Run("no credentials", func(t *testing.T) {
		c := &cluster{t: t}
		var addrs []string
		for i := 1; i <= 3; i++ {
			m := c.add(fmt.Sprintf("n%d", i))
			addrs = append(addrs, m.raftAddr)
		}
		const timeout = "6s"
		for i, m := range c.ms {
			flags := []string{"-bootstrap-expect", "3", "-bootstrap-expect-timeout", timeout, "-join", strings.Join(addrs, ",")}
			if i < 2 {
				flags = append(flags, "-join-as", "joiner")
			}
			secure(t, m, flags...)
			m.launch()
		}
		// How many each saw in its last round depends on who exited
		// first; the causes do not.
		wantRefusedStart(t, c.ms[2], clusterTimeout, "expected nodes found within "+timeout,
			c.ms[0].raftAddr+" refused this node: not authorized: bootstrap notify refused by "+c.ms[0].httpAddr+
				": credentials required for join (start the joining node with -join-as <user>) (this node has no -join-as)")
		for _, m := range c.ms[:2] {
			wantRefusedStart(t, m, clusterTimeout, "expected nodes found within "+timeout, "["+c.ms[2].raftAddr+"] never announced themselves to this node")
		}
	})
}
