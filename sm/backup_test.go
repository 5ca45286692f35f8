package sm

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/skiffdb/skiff/sm/cmdpb"
)

func backupOf(t *testing.T, h *harness, b *Backup) []byte {
	t.Helper()
	var buf bytes.Buffer
	b.W, b.Ctx = &buf, context.Background()
	out, err := h.s.Lookup(b)
	if err != nil {
		t.Fatal(err)
	}
	if n := out.(*BackupResult).Bytes; n != int64(buf.Len()) {
		t.Fatalf("reported %d bytes, wrote %d", n, buf.Len())
	}
	return buf.Bytes()
}

func fixture(t *testing.T) *harness {
	h := newHarness(t)
	h.apply(cmd("a", false,
		"CREATE TABLE foo (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, ts DATETIME, r REAL, b BLOB)",
		`INSERT INTO foo (name, ts, r, b) VALUES ('fi''ona', 1700000000, 1.5, x'deadbeef'), (NULL, '2024-01-02 03:04:05', -0.1, NULL)`,
		"CREATE INDEX foo_name ON foo(name)",
		"CREATE TABLE bar (x)", "INSERT INTO bar VALUES (42)",
		"CREATE VIEW v AS SELECT name FROM foo"))
	return h
}

func openSQLite(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func tables(t *testing.T, db *sql.DB) string {
	t.Helper()
	rows, err := db.Query("SELECT name FROM sqlite_master WHERE type IN ('table','view') ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		_ = rows.Scan(&n)
		names = append(names, n)
	}
	return strings.Join(names, ",")
}

// API.md 1.10: a binary backup is the client's database, without Skiff's
// tables, in WAL mode or (fmt=delete) rollback mode.
func TestBackupBinary(t *testing.T) {
	h := fixture(t)
	for _, tc := range []struct {
		b    Backup
		mode string
	}{
		{Backup{Format: BackupBinary}, "wal"},
		{Backup{Format: BackupDelete}, "delete"},
		{Backup{Format: BackupBinary, Vacuum: true}, "wal"},
	} {
		data := backupOf(t, h, &tc.b)
		if !bytes.HasPrefix(data, []byte("SQLite format 3\x00")) {
			t.Fatalf("not a SQLite file: %q", data[:16])
		}
		path := filepath.Join(t.TempDir(), "copy.sqlite")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		db := openSQLite(t, path)
		if got := tables(t, db); got != "bar,foo,sqlite_sequence,v" {
			t.Fatalf("tables in copy = %s", got)
		}
		var mode string
		_ = db.QueryRow("PRAGMA journal_mode").Scan(&mode)
		if mode != tc.mode {
			t.Fatalf("journal mode %s, want %s", mode, tc.mode)
		}
		var n int
		_ = db.QueryRow("SELECT COUNT(*) FROM foo WHERE b = x'deadbeef'").Scan(&n)
		if n != 1 {
			t.Fatal("row missing from copy")
		}
	}
}

// A SQL dump loads into an empty SQLite database and reproduces the same
// values with the same storage classes.
func TestBackupSQLDump(t *testing.T) {
	h := fixture(t)
	dump := string(backupOf(t, h, &Backup{Format: BackupSQL}))
	for _, want := range []string{"PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n", "CREATE TABLE foo", `INSERT INTO "foo" VALUES(1,'fi''ona',1700000000,1.5,X'DEADBEEF');`,
		"CREATE INDEX foo_name", "CREATE VIEW v", "DELETE FROM sqlite_sequence;", "COMMIT;\n"} {
		if !strings.Contains(dump, want) {
			t.Fatalf("dump lacks %q:\n%s", want, dump)
		}
	}
	if strings.Contains(dump, internalPrefix) {
		t.Fatalf("dump holds internal tables:\n%s", dump)
	}
	db := openSQLite(t, filepath.Join(t.TempDir(), "load.sqlite"))
	if _, err := db.Exec(dump); err != nil {
		t.Fatalf("loading the dump: %v", err)
	}
	var types string
	_ = db.QueryRow("SELECT group_concat(typeof(name)||typeof(ts)||typeof(r)||typeof(b), ',') FROM foo").Scan(&types)
	if types != "textintegerrealblob,nulltextrealnull" {
		t.Fatalf("storage classes after reload = %s", types)
	}
	only := string(backupOf(t, h, &Backup{Format: BackupSQL, Tables: []string{"bar"}}))
	if strings.Contains(only, "foo") || !strings.Contains(only, `INSERT INTO "bar" VALUES(42);`) {
		t.Fatalf("tables=bar dump:\n%s", only)
	}
}

// A binary load replaces the database: the dump of another database runs
// after every client object is dropped, in one entry.
func TestReplaceAllLoadsDump(t *testing.T) {
	src := fixture(t)
	dump := string(backupOf(t, src, &Backup{Format: BackupSQL}))
	dst := newHarness(t)
	dst.apply(cmd("a", false, "CREATE TABLE old (x)", "CREATE VIEW oldv AS SELECT x FROM old", "INSERT INTO old VALUES (1)"))
	b, _ := proto.Marshal(&cmdpb.Command{Version: CommandVersion, RequestId: []byte("load"), Type: cmdpb.Command_TYPE_EXECUTE,
		Request: &cmdpb.Request{Statements: stmts(stripTxControl(dump)), Transaction: true, ReplaceAll: true}})
	r := dst.apply(b)[0]
	if r.Error != "" || r.Results[0].Error != "" {
		t.Fatalf("load: %v", r)
	}
	got := string(backupOf(t, dst, &Backup{Format: BackupSQL}))
	if got != dump {
		t.Fatalf("database after load differs:\n got %s\nwant %s", got, dump)
	}
}

// stripTxControl removes the dump's own BEGIN/COMMIT lines, as the gateway
// does before a load (client transaction control is refused in entries).
func stripTxControl(dump string) string {
	var out []string
	for _, l := range strings.Split(dump, "\n") {
		if l != "BEGIN TRANSACTION;" && l != "COMMIT;" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// blockingWriter holds the first Write until release is closed.
type blockingWriter struct {
	started chan struct{}
	release chan struct{}
	once    sync.Once
	n       int
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.started) })
	<-w.release
	w.n += len(p)
	return len(p), nil
}

// A backup streams from a private copy: a client that reads slowly holds
// no lock, so Close (and a snapshot install) go ahead, and the stream still
// completes afterwards.
func TestSlowBackupClientDoesNotHoldTheDatabase(t *testing.T) {
	for _, format := range []BackupFormat{BackupBinary, BackupSQL} {
		h := fixture(t)
		w := &blockingWriter{started: make(chan struct{}), release: make(chan struct{})}
		done := make(chan error, 1)
		go func() {
			_, err := h.s.Lookup(&Backup{Ctx: context.Background(), W: w, Format: format})
			done <- err
		}()
		<-w.started
		closed := make(chan error, 1)
		go func() { closed <- h.s.Close() }()
		select {
		case err := <-closed:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("format %d: Close waited for a backup client", format)
		}
		close(w.release)
		if err := <-done; err != nil || w.n == 0 {
			t.Fatalf("format %d: backup after Close: %v, %d bytes", format, err, w.n)
		}
	}
}

// bigFixture holds a table of about 8 MB: several backup steps.
func bigFixture(t *testing.T) *harness {
	h := newHarness(t)
	h.apply(cmd("a", false,
		"CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT)",
		"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 25000) INSERT INTO big(v) SELECT printf('%0300d', x) FROM c",
		"CREATE TABLE w (id INTEGER PRIMARY KEY)"))
	return h
}

// A stepped backup under steady commits completes: its steps share one
// read transaction, so SQLite never restarts it, and the copy is that
// transaction's state.
func TestBackupUnderWritesCompletes(t *testing.T) {
	h := bigFixture(t)
	steps := 0
	writes := make(chan struct{})
	// A commit between every two steps: without the pinned read
	// transaction each one would restart the copy from the first page.
	h.s.onBackupStep = func() {
		steps++
		writes <- struct{}{}
		<-writes
	}
	done := make(chan []byte, 1)
	go func() { done <- backupOf(t, h, &Backup{Format: BackupBinary}) }()
	var out []byte
	timeout := time.After(60 * time.Second)
	for out == nil {
		select {
		case <-writes:
			h.apply(cmd("a", false, "INSERT INTO w DEFAULT VALUES"))
			writes <- struct{}{}
		case out = <-done:
		case <-timeout:
			t.Fatal("the backup did not complete under writes")
		}
	}
	if steps == 0 {
		t.Fatal("one step: the fixture is too small to test stepping")
	}
	path := filepath.Join(t.TempDir(), "b.db")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	var big, w int
	db := openSQLite(t, path)
	if err := db.QueryRow("SELECT (SELECT COUNT(*) FROM big), (SELECT COUNT(*) FROM w)").Scan(&big, &w); err != nil {
		t.Fatal(err)
	}
	if big != 25000 || w != 0 {
		t.Fatalf("copy has %d big rows and %d writes, want 25000 and 0 (the state at its start)", big, w)
	}
}

// A backup's copy holds no lock between its steps: Close goes ahead while
// it runs, and cancelling its context ends it at the next step.
func TestBackupCopyCancelAndClose(t *testing.T) {
	h := bigFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	inStep := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	h.s.onBackupStep = func() {
		once.Do(func() {
			close(inStep)
			<-release
		})
	}
	done := make(chan error, 1)
	go func() {
		_, err := h.s.Lookup(&Backup{Ctx: ctx, W: &bytes.Buffer{}, Format: BackupBinary})
		done <- err
	}()
	<-inStep
	closed := make(chan error, 1)
	go func() { closed <- h.s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close waited for a backup's copy")
	}
	cancel()
	close(release)
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled backup: %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a cancelled backup did not return")
	}
}
