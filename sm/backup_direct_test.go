package sm

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// backupDirect runs a binary backup and returns its bytes and whether it
// read the database file directly.
func backupDirect(t testing.TB, h *harness) ([]byte, bool) {
	t.Helper()
	var buf bytes.Buffer
	out, err := h.s.Lookup(&Backup{Ctx: context.Background(), W: &buf, Format: BackupBinary})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), out.(*BackupResult).Direct
}

func countsOf(t *testing.T, file []byte) (big, w int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "b.db")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	db := openSQLite(t, path)
	if err := db.QueryRow("SELECT (SELECT COUNT(*) FROM big), (SELECT COUNT(*) FROM w)").Scan(&big, &w); err != nil {
		t.Fatal(err)
	}
	if got := tables(t, db); got != "big,w" {
		t.Fatalf("backup tables %q, want only the client's", got)
	}
	return big, w
}

// Writes and a checkpoint after the pin, while the file is being read,
// change nothing in a direct copy: it is the pinned state.
func TestBackupDirectCopyIsThePinnedState(t *testing.T) {
	h := bigFixture(t)
	h.s.onBackupPin = func(stage string) {
		if stage != "copy" {
			return
		}
		for i := range 50 {
			h.apply(cmd(fmt.Sprintf("w%d", i), false, "INSERT INTO w DEFAULT VALUES", "UPDATE big SET v = 'changed' WHERE id % 7 = 0"))
		}
		if _, err := h.s.checkpoint(); err != nil {
			t.Error(err)
		}
	}
	out, direct := backupDirect(t, h)
	if !direct {
		t.Fatal("the backup did not read the database file")
	}
	if big, w := countsOf(t, out); big != 25000 || w != 0 {
		t.Fatalf("copy has %d big rows and %d writes, want 25000 and 0", big, w)
	}
	path := filepath.Join(t.TempDir(), "b.db")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	var changed int
	if err := openSQLite(t, path).QueryRow("SELECT COUNT(*) FROM big WHERE v = 'changed'").Scan(&changed); err != nil || changed != 0 {
		t.Fatalf("%d rows of a later state in the copy (%v)", changed, err)
	}
	if h.count("w") != 50 {
		t.Fatalf("the writes during the copy were not applied: %d", h.count("w"))
	}
}

// A commit between the pin and the checkpoint leaves frames the checkpoint
// may not copy: the backup then goes through SQLite's backup API, and is
// still the pinned state.
func TestBackupFallsBackWhenACommitFollowsThePin(t *testing.T) {
	h := bigFixture(t)
	h.s.onBackupPin = func(stage string) {
		if stage == "checkpoint" {
			h.apply(cmd("late", false, "INSERT INTO w DEFAULT VALUES"))
		}
	}
	out, direct := backupDirect(t, h)
	if direct {
		t.Fatal("direct copy although the WAL held frames after the pinned state")
	}
	if big, w := countsOf(t, out); big != 25000 || w != 0 {
		t.Fatalf("copy has %d big rows and %d writes, want 25000 and 0", big, w)
	}
	h.s.onBackupPin = nil
	if out, direct := backupDirect(t, h); !direct {
		t.Fatal("a quiet database was not copied directly")
	} else if big, w := countsOf(t, out); big != 25000 || w != 1 {
		t.Fatalf("copy has %d big rows and %d writes, want 25000 and 1", big, w)
	}
}

// BenchmarkBackupCopy compares /db/backup's ways of writing the pinned
// state (streamed from the database file; the file copied whole, then
// streamed; SQLite's backup API) in alternating rounds, with cp + sync of
// the same file, on SKIFF_BENCH_BACKUP_MB (default 64) MB of 1,000-byte
// rows, into io.Discard. Run it with -benchtime 1x.
func BenchmarkBackupCopy(b *testing.B) {
	h := newHarness(b)
	loadBenchRows(h, benchMB("SKIFF_BENCH_BACKUP_MB"))
	size := float64(fileSize(h.s.path)) / 1e6
	ways := []struct {
		name             string
		viaAPI, noStream bool
		streamed, direct bool
		took             time.Duration
	}{
		{name: "stream", streamed: true, direct: true},
		{name: "copy", noStream: true, direct: true},
		{name: "api", viaAPI: true, noStream: true},
	}
	var cpSync time.Duration
	for range b.N {
		for i := range ways {
			w := &ways[i]
			h.s.cfg.BackupViaAPI, h.s.noBackupStream = w.viaAPI, w.noStream
			t0 := time.Now()
			out, err := h.s.Lookup(&Backup{Ctx: context.Background(), W: io.Discard, Format: BackupBinary})
			if err != nil {
				b.Fatal(err)
			}
			if r := out.(*BackupResult); r.Streamed != w.streamed || r.Direct != w.direct {
				b.Fatalf("%s: streamed %v, direct %v", w.name, r.Streamed, r.Direct)
			}
			w.took += time.Since(t0)
		}
		cpSync += timeCPSync(b, h.s.path)
	}
	n := float64(b.N)
	b.ReportMetric(size, "file_MB")
	b.ReportMetric(cpSync.Seconds()/n, "cp_sync_s")
	for _, w := range ways {
		b.ReportMetric(w.took.Seconds()/n, w.name+"_s")
		b.ReportMetric(w.took.Seconds()/cpSync.Seconds(), w.name+"_x_cp_sync")
	}
}

// timeCPSync times `cp path <temp> && sync <temp>`: the yardstick the
// benchmarks of whole-file paths divide by.
func timeCPSync(b *testing.B, path string) time.Duration {
	b.Helper()
	dst := filepath.Join(b.TempDir(), "cp")
	t0 := time.Now()
	if out, err := exec.Command("sh", "-c", `cp "$1" "$2" && sync "$2"`, "cp-sync", path, dst).CombinedOutput(); err != nil {
		b.Fatalf("cp+sync: %v %s", err, out)
	}
	return time.Since(t0)
}
