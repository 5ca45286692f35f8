package sm

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// BenchmarkSnapshotStages times each stage of a full snapshot transfer of a
// database of SKIFF_BENCH_SNAPSHOT_MB (default 64) MB of 1,000-byte rows,
// the soak's data: the leader's PrepareSnapshot and SaveSnapshot into a
// file (what Dragonboat's receiver writes), the joiner's
// RecoverFromSnapshot from that file, and cp + sync of the same database
// file for the ratio issue 17 asks for. Run it with -benchtime 1x.
func BenchmarkSnapshotStages(b *testing.B) {
	src := newHarness(b)
	loadBenchRows(src, benchMB("SKIFF_BENCH_SNAPSHOT_MB"))
	rows := src.count("t")
	// The joiner's early writeback on and off, alternating, for the ratio.
	for range 2 {
		b.Run("direct", func(b *testing.B) { benchSnapshotStages(b, src, rows, false, true) })
		b.Run("direct-nowriteback", func(b *testing.B) { benchSnapshotStages(b, src, rows, false, false) })
	}
	b.Run("copy", func(b *testing.B) { benchSnapshotStages(b, src, rows, true, true) })
}

func benchSnapshotStages(b *testing.B, src *harness, rows int64, viaCopy, writeback bool) {
	src.s.cfg.SnapshotViaCopy = viaCopy
	if pc, err := src.s.PrepareSnapshot(); err == nil {
		if sc, ok := pc.(*snapshotCtx); ok && viaCopy {
			// The old path's copy aside alone, for the stage split.
			t0 := time.Now()
			if err := backupTo(sc.conn, filepath.Join(b.TempDir(), "aside"), nil, backupPagesPerStep, nil); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(time.Since(t0).Seconds(), "copy_aside_s")
		}
		if err := src.s.SaveSnapshot(pc, io.Discard, make(chan struct{})); err != nil {
			b.Fatal(err)
		}
	}
	for range b.N {
		out := filepath.Join(b.TempDir(), "received")
		f, err := os.Create(out)
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		ctx, err := src.s.PrepareSnapshot()
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := src.s.SaveSnapshot(ctx, f, make(chan struct{})); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		_ = f.Close()
		size := fileSize(out)

		dst := newHarness(b)
		dst.s.noWriteback = !writeback
		rf, err := os.Open(out)
		if err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		if err := dst.s.RecoverFromSnapshot(rf, make(chan struct{})); err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		_ = rf.Close()
		if got := dst.count("t"); got != rows {
			b.Fatalf("joiner has %d rows, leader %d", got, rows)
		}

		cpDst := filepath.Join(b.TempDir(), "copy.sqlite")
		t5 := time.Now()
		if err := exec.Command("cp", src.s.path, cpDst).Run(); err != nil {
			b.Fatal(err)
		}
		if err := exec.Command("sync").Run(); err != nil {
			b.Fatal(err)
		}
		cpSync := time.Since(t5)
		xfer := t4.Sub(t0)
		b.ReportMetric(float64(size)/(1<<20), "MB")
		b.ReportMetric(t1.Sub(t0).Seconds(), "prepare_s")
		b.ReportMetric(t2.Sub(t1).Seconds(), "save_s")
		b.ReportMetric(t4.Sub(t3).Seconds(), "recover_s")
		b.ReportMetric(xfer.Seconds(), "total_s")
		b.ReportMetric(cpSync.Seconds(), "cp_sync_s")
		b.ReportMetric(xfer.Seconds()/cpSync.Seconds(), "ratio")
	}
}

// benchMB is the database size in MB the environment variable asks for
// (default 64).
func benchMB(env string) int {
	if v, err := strconv.Atoi(os.Getenv(env)); err == nil && v > 0 {
		return v
	}
	return 64
}

// loadBenchRows fills table t with mb MB of 1,000-byte rows, the soak's data.
func loadBenchRows(h *harness, mb int) {
	h.apply(cmd("schema", false, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)"))
	for i := 0; i < mb; i++ {
		h.apply(cmd(fmt.Sprintf("load-%d", i), false,
			"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 1000) INSERT INTO t(v) SELECT randomblob(1000) FROM c"))
	}
}
