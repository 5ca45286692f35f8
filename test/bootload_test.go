package test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffdb/skiff/test/testdb"
)

// bootRoutes are the two ways a SQLite file replaces a database, with the
// exact answer of each (API.md 1.10).
var bootRoutes = []struct{ path, ctype, answer string }{
	{"/boot", "application/octet-stream", ""},
	{"/db/load", "application/octet-stream", `{"results":[]}`},
}

// /boot and a binary /db/load replace a node's database with a real SQLite
// file streamed to disk; two nodes that join afterwards receive it and all
// three serve the same rows.
func TestBootAndLoadThenJoinServeIdenticalRows(t *testing.T) {
	for _, rt := range bootRoutes {
		t.Run(strings.TrimPrefix(rt.path, "/"), func(t *testing.T) {
			c := newCluster(t, 1)
			n1 := c.ms[0]
			wantOK(t, "old data", n1.execute(`["CREATE TABLE old (x)","INSERT INTO old VALUES (1)"]`),
				`{"results":[{},{"last_insert_id":1,"rows_affected":1}]}`)
			want := rows{"fiona", "sinead", "declan"}
			file := testdb.File(t, want...)
			wantOK(t, "POST "+rt.path, n1.postType(rt.path, rt.ctype, string(file)), rt.answer)
			waitRows(t, n1, want)
			wantOK(t, "the old table is gone", n1.query("SELECT * FROM old"),
				`{"results":[{"error":"no such table: old"}]}`)
			for _, id := range []string{"n2", "n3"} {
				m := c.add(id, "-join", n1.raftAddr)
				m.start()
			}
			for _, m := range c.ms {
				m.waitReady(clusterTimeout)
			}
			want.insert(t, n1, "after")
			for _, m := range c.ms {
				waitRows(t, m, want, "level=none")
			}
			// The client's tables are the uploaded file's.
			r := n1.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_\\_skiff\\_%' ESCAPE '\\' ORDER BY name")
			wantOK(t, "tables", r, `{"results":[{"columns":["name"],"types":["text"],"values":[["t"]]}]}`)
		})
	}
}

// On a cluster of three voters, /boot is refused (rqlite's "not
// single-node"), and a binary /db/load goes through the log: every node
// serves the file's rows.
func TestBootRefusedAndLoadReplicatedOnThreeNodes(t *testing.T) {
	c := newCluster(t, 3)
	want := rows{"a", "b"}
	file := testdb.File(t, want...)
	wantResp(t, "POST /boot on 3 nodes", c.leader.postType("/boot", "application/octet-stream", string(file)),
		http.StatusServiceUnavailable, "not single-node\n")
	follower := others(c.ms, c.leader)[0]
	wantOK(t, "POST /db/load via a follower", follower.postType("/db/load", "application/octet-stream", string(file)),
		`{"results":[]}`)
	for _, m := range c.ms {
		waitRows(t, m, want, "level=none")
	}
}

// sendHalf opens a connection to n, sends a request for path announcing
// body whole (Content-Length, or chunked) and then half of it, and closes
// the connection: a client that goes away mid-upload.
func sendHalf(t *testing.T, n *member, path string, body []byte, chunked bool) {
	t.Helper()
	conn, err := net.Dial("tcp", n.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	w := bufio.NewWriter(conn)
	fmt.Fprintf(w, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\n", path, n.httpAddr)
	half := body[:len(body)/2]
	if chunked {
		fmt.Fprintf(w, "Transfer-Encoding: chunked\r\n\r\n%x\r\n", len(half))
		_, _ = w.Write(half)
		_, _ = w.WriteString("\r\n")
	} else {
		fmt.Fprintf(w, "Content-Length: %d\r\n\r\n", len(body))
		_, _ = w.Write(half)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

// waitNoStaged polls n's data directory until no staged upload is left.
func waitNoStaged(t *testing.T, n *member) {
	t.Helper()
	deadline := time.Now().Add(catchUpTimeout)
	for {
		left, err := filepath.Glob(filepath.Join(n.dataDir, "*", "boot-*"))
		if err != nil {
			t.Fatal(err)
		}
		more, _ := filepath.Glob(filepath.Join(n.dataDir, "*", "*", "boot-*"))
		left = append(left, more...)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: staged uploads left: %v", n.id, left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// bigFile is a SQLite file of 20,000 rows in t, big enough that half of it
// is many reads of the server's buffer.
func bigFile(t *testing.T) []byte {
	t.Helper()
	return testdb.FileOf(t, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
		"WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 20000) INSERT INTO t(v) SELECT printf('row-%05d-%0100d', i, i) FROM c")
}

// A /boot or /db/load whose client goes away half-way through the body
// leaves the old database intact and served, and no staged file behind;
// the node then takes a whole upload.
func TestBootAndLoadCutMidBodyKeepOldDatabase(t *testing.T) {
	c := newCluster(t, 1)
	n1 := c.ms[0]
	old := rows{"old1", "old2"}
	file := testdb.File(t, old...)
	wantOK(t, "first boot", n1.postType("/boot", "application/octet-stream", string(file)), "")
	waitRows(t, n1, old)
	big := bigFile(t)
	for _, rt := range bootRoutes {
		for _, chunked := range []bool{false, true} {
			sendHalf(t, n1, rt.path, big, chunked)
			waitNoStaged(t, n1)
			waitRows(t, n1, old)
		}
	}
	// Each cut upload reached the node and ended with its client: the
	// handler sees either its context canceled or the body cut short,
	// whichever comes first; a body cut short is the client's doing (a
	// 400, not a 500), which the state machine logs.
	// The client is done before the handler logs, so wait for the lines.
	cut := 0
	for deadline := time.Now().Add(catchUpTimeout); ; time.Sleep(50 * time.Millisecond) {
		b, err := os.ReadFile(n1.proc.logPath)
		if err != nil {
			t.Fatal(err)
		}
		cut = bytes.Count(b, []byte(`"error":"call canceled: context canceled"`)) +
			bytes.Count(b, []byte(`"msg":"boot upload cut short; nothing staged"`))
		if cut >= 4 || time.Now().After(deadline) {
			break
		}
	}
	if cut != 4 {
		t.Errorf("the node's log shows %d of the 4 cut uploads", cut)
	}
	wantOK(t, "a whole load after the cut ones", n1.postType("/db/load", "application/octet-stream", string(big)), `{"results":[]}`)
	wantOK(t, "count", n1.query("SELECT COUNT(*) FROM t"),
		`{"results":[{"columns":["COUNT(*)"],"types":["integer"],"values":[[20000]]}]}`)
}

// A node that crashes after its BOOT entry staged the file, before the
// CURRENT switch (failpoint sm/boot-install=crash), restarts with the old
// database, served, and no staged file: never a half-installed one. The
// log's BOOT entry is applied again at restart and finds no staged file.
func TestBootCrashBeforeSwitchKeepsOldDatabase(t *testing.T) {
	c := newClusterWith(t, 1, func(m *member) { m.failpoints = new(string) })
	n1 := c.ms[0]
	old := rows{"kept"}
	wantOK(t, "first boot", n1.postType("/boot", "application/octet-stream", string(testdb.File(t, old...))), "")
	waitRows(t, n1, old)
	r, err := n1.do(n1.client, http.MethodPut, "/debug/failpoints/sm/boot-install", "text/plain", strings.NewReader("crash"))
	if err != nil || r.status != http.StatusOK {
		t.Fatalf("set failpoint: %v %v", r, err)
	}
	// No answer: the process dies under the request.
	if r, err := n1.do(n1.client, http.MethodPost, "/boot", "application/octet-stream", strings.NewReader(string(testdb.File(t, "new1", "new2")))); err == nil {
		t.Fatalf("the boot was answered (%s) by a node that should have crashed", r)
	}
	select {
	case <-n1.proc.done:
	case <-time.After(killTimeout):
		t.Fatal("no crash")
	}
	n1.start()
	n1.waitReady(readyTimeout)
	waitRows(t, n1, old)
	waitNoStaged(t, n1)
	wantOK(t, "a boot after the restart", n1.postType("/boot", "application/octet-stream", string(testdb.File(t, "new1"))), "")
	waitRows(t, n1, rows{"new1"})
}
