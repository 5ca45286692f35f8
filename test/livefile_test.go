package test

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
)

// While a node runs, its live SQLite file carries the process's exclusive
// lock (sm/conn.go, SQLite's unix-excl VFS: no per-transaction locks, the
// WAL index in memory): another process that opens it is told the database
// is locked, rather than reading beside a WAL index it cannot see. After
// the node stops, the file opens and holds what was written.
func TestLiveFileLockedAgainstOtherProcesses(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.start()
	n.waitReady(readyTimeout)
	wantOK(t, "create", n.execute(`["CREATE TABLE t (x)", "INSERT INTO t VALUES (1)"]`),
		`{"results":[{},{"last_insert_id":1,"rows_affected":1}]}`)
	live := filepath.Join(n.dataDir, "db", "db-1.sqlite")
	count := func() (int, error) {
		db, err := sql.Open("sqlite3", "file:"+live+"?mode=ro")
		if err != nil {
			return 0, err
		}
		defer db.Close()
		var c int
		err = db.QueryRow("SELECT count(*) FROM t").Scan(&c)
		return c, err
	}
	if c, err := count(); err == nil || !strings.Contains(err.Error(), "database is locked") {
		t.Fatalf("reading the live file from another process: %d rows, %v; want database is locked", c, err)
	}
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	if c, err := count(); err != nil || c != 1 {
		t.Fatalf("reading the file after the node stopped: %d rows, %v; want 1", c, err)
	}
}
