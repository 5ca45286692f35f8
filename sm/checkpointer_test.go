package sm

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"time"
)

// Commits nudge the background checkpointer, which copies the WAL into
// the database file although the WAL never reached SQLite's automatic
// threshold (1,000 pages; these writes make about 130).
func TestBackgroundCheckpointCopiesWAL(t *testing.T) {
	h := &harness{t: t, dir: t.TempDir(), mod: func(c *Config) { c.CheckpointInterval = 10 * time.Millisecond }}
	h.open()
	h.apply(cmd("c", false, "CREATE TABLE big (v BLOB)"))
	before := fileSize(h.s.path)
	for i := range 5 {
		h.apply(cmd(fmt.Sprintf("w%d", i), false, "INSERT INTO big VALUES (randomblob(100000))"))
	}
	deadline := time.Now().Add(30 * time.Second)
	for fileSize(h.s.path) < before+400_000 {
		if time.Now().After(deadline) {
			t.Fatalf("database file %d bytes (%d before the writes): the WAL was not checkpointed", fileSize(h.s.path), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := h.count("big"); n != 5 {
		t.Fatalf("%d rows, want 5", n)
	}
}

// With the interval negative there is no background checkpointer; Close
// stops a running one, and a checkpoint after Close finds the machine
// closed rather than its files.
func TestBackgroundCheckpointerLifetime(t *testing.T) {
	h := &harness{t: t, dir: t.TempDir(), mod: func(c *Config) { c.CheckpointInterval = -1 }}
	h.open()
	if h.s.ckpt != nil {
		t.Fatal("checkpointer started with a negative interval")
	}
	h.mod = func(c *Config) { c.CheckpointInterval = time.Millisecond }
	if err := h.s.Close(); err != nil {
		t.Fatal(err)
	}
	h.open()
	c := h.s.ckpt
	if c == nil {
		t.Fatal("no checkpointer")
	}
	h.apply(cmd("c", false, "CREATE TABLE t (v)"))
	for i := range 50 {
		h.apply(cmd(fmt.Sprintf("w%d", i), false, "INSERT INTO t VALUES (1)"))
	}
	if err := h.s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.done:
	default:
		t.Fatal("checkpointer still running after Close")
	}
	if _, err := h.s.liveCheckpoint(); !errors.Is(err, ErrClosed) {
		t.Fatalf("checkpoint after Close: %v, want ErrClosed", err)
	}
	if _, err := os.Stat(h.s.path); err != nil {
		t.Fatal(err)
	}
}

// A snapshot's checkpoint waits for a background one in progress rather
// than failing with SQLITE_BUSY, which would make it copy the database
// aside instead of streaming the file.
func TestSnapshotCheckpointWaitsForBackgroundOne(t *testing.T) {
	h := &harness{t: t, dir: t.TempDir(), mod: func(c *Config) { c.CheckpointInterval = time.Microsecond }}
	h.open()
	h.apply(cmd("c", false, "CREATE TABLE big (v BLOB)"))
	for i := range 100 {
		// Each batch nudges the checkpointer, which is then busy copying
		// it while the snapshot is prepared.
		h.apply(cmd(fmt.Sprintf("w%d", i), false, "INSERT INTO big VALUES (randomblob(50000))"))
		ctx, err := h.s.PrepareSnapshot()
		if err != nil {
			t.Fatal(err)
		}
		sc := ctx.(*snapshotCtx)
		direct := sc.direct
		sc.close()
		if !direct {
			t.Fatalf("snapshot %d is copied aside: its checkpoint collided with the background one", i)
		}
	}
}
