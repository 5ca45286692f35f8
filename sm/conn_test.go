package sm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	sqlite3 "github.com/mattn/go-sqlite3"
	"golang.org/x/sys/unix"
)

// SQLite's lock bytes (os.h): PENDING_BYTE is 0x40000000, and the range
// shared locks take follows it and the RESERVED byte.
const (
	sqliteSharedFirst = 0x40000000 + 2
	sqliteSharedSize  = 510
)

// The live file's connections use processVFS: the WAL index lives in this
// process's memory (no -shm file) and the file carries one exclusive lock,
// taken once, instead of a lock and an unlock in every transaction.
func TestOwnedFileLockedOnceNoSHM(t *testing.T) {
	h := newHarness(t)
	h.apply(cmd("a", false, "CREATE TABLE t (id INTEGER PRIMARY KEY)"), cmd("b", false, "INSERT INTO t VALUES (1)"))
	h.query("SELECT * FROM t")
	if _, err := os.Stat(h.s.path + "-shm"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat %s-shm: %v, want no such file", filepath.Base(h.s.path), err)
	}
	// An open-file-description lock conflicts with this process's own POSIX
	// locks, so F_OFD_GETLK from a fresh descriptor reports the lock.
	f, err := os.Open(h.s.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // closing drops the POSIX lock: the harness is done with it by then
	lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: 0, Start: sqliteSharedFirst, Len: sqliteSharedSize}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk); err != nil {
		t.Fatal(err)
	}
	if lk.Type != unix.F_WRLCK {
		t.Fatalf("lock on the shared range: type %d, want F_WRLCK (%d)", lk.Type, unix.F_WRLCK)
	}
}

// A reader is opened read-write (conn.go): query_only must still fail
// every write on it, even without the authorizer.
func TestReaderRefusesWrites(t *testing.T) {
	h := newHarness(t)
	h.apply(cmd("a", false, "CREATE TABLE t (id INTEGER PRIMARY KEY)"))
	r, err := openReader(h.s.path, false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, q := range []string{"INSERT INTO t VALUES (1)", "CREATE TABLE u (x)", "PRAGMA user_version = 7", "VACUUM"} {
		_, err := r.ExecContext(context.Background(), q, nil)
		var se sqlite3.Error
		if !errors.As(err, &se) || se.Code != sqlite3.ErrReadonly {
			t.Errorf("%s on a reader: %v, want SQLITE_READONLY", q, err)
		}
	}
	// VACUUM INTO writes another file, which query_only does not stop
	// before creating it: runRead refuses it as a write first.
	into := filepath.Join(t.TempDir(), "copy.db")
	res := h.query("VACUUM INTO '" + into + "'").GetResults()
	if len(res) != 1 || res[0].GetError() != ErrTextWriteViaQuery {
		t.Errorf("VACUUM INTO as a query: %v, want %q", res, ErrTextWriteViaQuery)
	}
	if _, err := os.Stat(into); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("VACUUM INTO as a query: stat %s: %v, want no such file", into, err)
	}
	if n := h.count("t"); n != 0 {
		t.Fatalf("rows after refused writes: %d", n)
	}
}
