package sm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"
	"github.com/skiffdb/skiff/sm/cmdpb"
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

// AbortReads interrupts a read that is running and fails the ones after
// it, without their contexts ending.
func TestAbortReads(t *testing.T) {
	h := newHarness(t)
	endless := &cmdpb.Request{Statements: stmts("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c")}
	done := make(chan error, 1)
	go func() {
		out, err := h.s.Lookup(&Query{Ctx: context.Background(), Request: endless})
		if err == nil {
			if r := out.(*cmdpb.Response).GetResults(); len(r) == 1 && r[0].GetError() != "" {
				err = errors.New(r[0].GetError())
			}
		}
		done <- err
	}()
	time.Sleep(200 * time.Millisecond) // it runs
	// A snapshot's swap waiting for mu behind the read (RecoverFromSnapshot
	// takes it to swap files) must not hold the abort back.
	swapped := make(chan struct{})
	go func() {
		h.s.mu.Lock()
		closed := h.s.closed
		h.s.mu.Unlock()
		if !closed {
			close(swapped)
		}
	}()
	time.Sleep(50 * time.Millisecond) // the swap waits
	go h.s.AbortReads()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "interrupt") {
			t.Fatalf("aborted read: %v, want an interrupt", err)
		}
	case <-time.After(10 * time.Second):
		h.s.readers.Load().abort() // let the harness close the machine
		t.Fatal("AbortReads did not end a running read")
	}
	select {
	case <-swapped:
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting swap never got the lock")
	}
	if _, err := h.s.Lookup(&Query{Ctx: context.Background(), Request: &cmdpb.Request{Statements: stmts("SELECT 1")}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after AbortReads: %v, want ErrClosed", err)
	}
}
