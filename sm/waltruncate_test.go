package sm

import (
	"fmt"
	"strings"
	"testing"
)

// TruncateWAL reports the WAL's size below its threshold and, past it,
// folds the WAL into the database file and empties it, keeping the data
// (rqlited's -raft-snap-wal-size).
func TestTruncateWALShrinksTheWAL(t *testing.T) {
	h := newHarness(t)
	h.apply(cmd("create", false, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
	pad := strings.Repeat("x", 4000)
	for i := range 200 {
		h.apply(cmd(fmt.Sprintf("w%d", i), false, fmt.Sprintf("INSERT INTO t(v) VALUES('%s')", pad)))
	}
	if err := h.s.Sync(); err != nil {
		t.Fatal(err)
	}
	look := func(min int64) *TruncateWALResult {
		t.Helper()
		out, err := h.s.Lookup(&TruncateWAL{MinSize: min})
		if err != nil {
			t.Fatal(err)
		}
		return out.(*TruncateWALResult)
	}
	size := look(0)
	if size.Before < 500_000 || size.After != size.Before || size.Busy {
		t.Fatalf("size probe: %+v, want a WAL of 500 kB or more, untouched", size)
	}
	if r := look(size.Before + 1); r.After != size.Before {
		t.Fatalf("below the threshold: %+v, want the WAL untouched", r)
	}
	r := look(size.Before)
	if r.Busy || r.After != 0 || r.Before != size.Before {
		t.Fatalf("past the threshold: %+v, want the WAL emptied", r)
	}
	if n := h.count("t"); n != 200 {
		t.Fatalf("%d rows after the checkpoint, want 200", n)
	}
	h.apply(cmd("after", false, "INSERT INTO t(v) VALUES('after')"))
	if n := h.count("t"); n != 201 {
		t.Fatalf("%d rows after a write past the checkpoint, want 201", n)
	}
}
