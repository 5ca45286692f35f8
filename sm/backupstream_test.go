package sm

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// holesKept reports whether the file system under dir keeps a sparse
// file's holes, which streaming a backup needs.
func holesKept(t *testing.T, dir string) bool {
	t.Helper()
	f, err := os.CreateTemp(dir, "holes")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := f.Truncate(4 << 20); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, 4096), 1<<20); err != nil {
		t.Fatal(err)
	}
	ext, err := dataExtents(f, 4<<20)
	return err == nil && len(ext) == 1 && ext[0] == [2]int64{1 << 20, 1<<20 + 4096}
}

// direct opens a connection of the test's own to the state machine's
// live file, for shaping Skiff's tables as no command would.
func direct(t *testing.T, h *harness) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+h.s.path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

// A streamed backup is, byte for byte, the whole copy scrubbed: on
// databases whose internal tables span interior pages and overflow
// chains, whose freelist has several trunks, with sqlite_sequence and
// sqlite_stat1, in both binary formats.
func TestBackupStreamMatchesCopy(t *testing.T) {
	shapes := []struct {
		name  string
		build func(t *testing.T) *harness
	}{
		{"small", func(t *testing.T) *harness { return fixture(t) }},
		{"freelist with several trunks", func(t *testing.T) *harness {
			h := bigFixture(t)
			h.apply(cmd("del", false, "DELETE FROM big WHERE id % 5 <> 0"))
			return h
		}},
		{"internal tables with interior pages and overflow", func(t *testing.T) *harness {
			h := bigFixture(t)
			db := direct(t, h)
			if _, err := db.Exec(`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 400)
				INSERT INTO ` + dedupTable + ` (idx, id, response) SELECT 1000000 + x, randomblob(700), randomblob(100 + 37 * x) FROM c`); err != nil {
				t.Fatal(err)
			}
			h.apply(cmd("del", false, "DELETE FROM big WHERE id % 3 = 0"))
			return h
		}},
		{"sqlite_sequence and sqlite_stat1", func(t *testing.T) *harness {
			h := bigFixture(t)
			h.apply(cmd("seq", false, "CREATE TABLE s (id INTEGER PRIMARY KEY AUTOINCREMENT, v)",
				"INSERT INTO s (v) VALUES (1), (2)", "CREATE INDEX big_v ON big (v)", "ANALYZE"))
			return h
		}},
	}
	for _, sh := range shapes {
		for _, format := range []BackupFormat{BackupBinary, BackupDelete} {
			t.Run(fmt.Sprintf("%s/format %d", sh.name, format), func(t *testing.T) {
				h := sh.build(t)
				var buf bytes.Buffer
				res, err := h.s.Lookup(&Backup{Ctx: context.Background(), W: &buf, Format: format})
				if err != nil {
					t.Fatal(err)
				}
				streamed := res.(*BackupResult).Streamed
				if want := holesKept(t, h.dir); streamed != want {
					t.Fatalf("streamed %v, but this file system keeps holes: %v", streamed, want)
				}
				h.s.noBackupStream = true
				whole := backupOf(t, h, &Backup{Format: format})
				h.s.noBackupStream = false
				if !bytes.Equal(buf.Bytes(), whole) {
					t.Fatalf("streamed backup (%d bytes) differs from the scrubbed copy (%d bytes)", buf.Len(), len(whole))
				}
				path := filepath.Join(t.TempDir(), "b.db")
				if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
					t.Fatal(err)
				}
				db := openSQLite(t, path)
				var check string
				if err := db.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
					t.Fatalf("integrity_check: %q %v", check, err)
				}
				var internal int
				if err := db.QueryRow("SELECT COUNT(*) FROM sqlite_master WHERE name LIKE '__skiff%'").Scan(&internal); err != nil || internal != 0 {
					t.Fatalf("%d internal tables in the backup (%v)", internal, err)
				}
			})
		}
	}
}

// The b-tree walk finds every page of a database exactly once: the pages
// of all b-trees (with overflow chains) and the freelist's are 1..N.
func TestBtreePagesCoverTheFile(t *testing.T) {
	h := bigFixture(t)
	db := direct(t, h)
	if _, err := db.Exec(`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 300)
		INSERT INTO ` + dedupTable + ` (idx, id, response) SELECT 1000000 + x, randomblob(2000), randomblob(50 * x) FROM c`); err != nil {
		t.Fatal(err)
	}
	h.apply(cmd("x", false, "CREATE INDEX big_v ON big (v)", "DELETE FROM big WHERE id % 4 = 0"))
	if _, err := h.s.checkpoint(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(h.s.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g, err := readGeometry(f)
	if err != nil {
		t.Fatal(err)
	}
	pr := &pageReader{r: f, g: g}
	set := pageSet{}
	rows, err := db.Query("SELECT rootpage FROM sqlite_schema WHERE rootpage > 0")
	if err != nil {
		t.Fatal(err)
	}
	roots := []uint32{1}
	for rows.Next() {
		var r uint32
		if err := rows.Scan(&r); err != nil {
			t.Fatal(err)
		}
		roots = append(roots, r)
	}
	rows.Close()
	for _, r := range roots {
		if err := pr.addBtree(r, set); err != nil {
			t.Fatalf("root %d: %v", r, err)
		}
	}
	trunks := pageSet{}
	if err := pr.addFreelistTrunks(trunks); err != nil {
		t.Fatal(err)
	}
	if len(trunks) < 1 {
		t.Fatal("no freelist: the fixture should free pages")
	}
	for n := range trunks {
		set[n] = struct{}{}
		page, err := pr.read(n, &pr.page)
		if err != nil {
			t.Fatal(err)
		}
		leaves := binary.BigEndian.Uint32(page[4:])
		for i := range leaves {
			set[binary.BigEndian.Uint32(page[8+4*i:])] = struct{}{}
		}
	}
	if int64(len(set)) != g.pages {
		t.Fatalf("walk found %d distinct pages of %d", len(set), g.pages)
	}
	for n := uint32(1); int64(n) <= g.pages; n++ {
		if _, ok := set[n]; !ok {
			t.Fatalf("page %d not found", n)
		}
	}
}

// A streamed backup holds its pin until the last byte: the WAL cannot be
// truncated while it is written. CopyFirst (a gzip client's backup) copies
// the pinned state and releases the pin before writing, so the WAL can.
func TestBackupPinLastsAsLongAsTheStream(t *testing.T) {
	for _, copyFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("copy first %v", copyFirst), func(t *testing.T) {
			h := bigFixture(t)
			// Where the file system does not keep holes every backup copies.
			wantStreamed := !copyFirst && holesKept(t, h.dir)
			p := &pausingWriter{w: io.Discard, at: 1, half: make(chan struct{}), resume: make(chan struct{})}
			done := make(chan *BackupResult, 1)
			go func() {
				out, err := h.s.Lookup(&Backup{Ctx: context.Background(), W: p, Format: BackupBinary, CopyFirst: copyFirst})
				if err != nil {
					t.Error(err)
				}
				res, _ := out.(*BackupResult)
				done <- res
			}()
			<-p.half
			h.apply(cmd("during", false, "INSERT INTO w DEFAULT VALUES"))
			res, err := h.s.Lookup(&TruncateWAL{MinSize: 1})
			if err != nil {
				t.Fatal(err)
			}
			tr := res.(*TruncateWALResult)
			close(p.resume)
			b := <-done
			if b == nil {
				t.Fatal("backup failed")
			}
			if b.Streamed != wantStreamed {
				t.Fatalf("copy first %v: streamed %v, want %v", copyFirst, b.Streamed, wantStreamed)
			}
			if pinned := tr.Busy || tr.After != 0; pinned != b.Streamed {
				t.Fatalf("streamed %v but WAL truncation mid-backup: %+v", b.Streamed, tr)
			}
		})
	}
}
