package sm

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/skiffdb/skiff/sm/cmdpb"
)

func bootCmd(name string) []byte {
	b, _ := proto.Marshal(&cmdpb.Command{Version: CommandVersion, Type: cmdpb.Command_TYPE_BOOT, BootFile: name})
	return b
}

// /boot (API.md 1.10): a staged SQLite file becomes the database at the
// BOOT entry's index, inside a batch, and survives a restart.
func TestBootReplacesDatabase(t *testing.T) {
	src := fixture(t)
	file := backupOf(t, src, &Backup{Format: BackupBinary})

	h := newHarness(t)
	h.apply(cmd("a", false, "CREATE TABLE old (x)"))
	name, n, err := h.s.StageBoot(bytes.NewReader(file), make(chan struct{}))
	if err != nil || n != int64(len(file)) {
		t.Fatalf("StageBoot = %q, %d, %v", name, n, err)
	}
	resps := h.apply(cmd("b", false, "INSERT INTO old VALUES (1)"), bootCmd(name), cmd("c", false, "INSERT INTO bar VALUES (43)"))
	if resps[1].Error != "" || resps[2].Results[0].Error != "" {
		t.Fatalf("boot batch: %v", resps)
	}
	check := func() {
		t.Helper()
		if r := h.query("SELECT COUNT(*) FROM old").Results[0]; r.Error != "no such table: old" {
			t.Fatalf("old database still live: %v", r)
		}
		if r := h.query("SELECT group_concat(x) FROM bar").Results[0]; r.Rows[0].Values[0].GetS() != "42,43" {
			t.Fatalf("bar = %v", r)
		}
	}
	check()
	last := h.next - 1
	_ = h.s.Close()
	if idx := h.open(); idx != last {
		t.Fatalf("Open after boot = %d, want %d", idx, last)
	}
	check()
	if left, _ := filepath.Glob(filepath.Join(h.dir, bootPrefix+"*")); len(left) != 0 {
		t.Fatalf("staged files left: %v", left)
	}
}

func TestBootRejectsBadFiles(t *testing.T) {
	h := newHarness(t)
	if _, _, err := h.s.StageBoot(bytes.NewReader([]byte("not sqlite")), make(chan struct{})); !errors.Is(err, ErrInvalidSQLite) {
		t.Fatalf("non-SQLite upload: %v", err)
	}
	if _, _, err := h.s.StageBoot(bytes.NewReader(append([]byte("SQLite format 3\x00"), make([]byte, 200)...)), make(chan struct{})); !errors.Is(err, ErrInvalidSQLite) {
		t.Fatalf("corrupt upload: %v", err)
	}
	h.apply(cmd("a", false, "CREATE TABLE keep (x)"))
	for _, name := range []string{"boot-1.tmp", "../../etc/passwd", "db-1.sqlite"} {
		r := h.apply(bootCmd(name))[0]
		if r.Error == "" {
			t.Fatalf("boot of %q succeeded", name)
		}
	}
	if r := h.query("SELECT COUNT(*) FROM keep").Results[0]; r.Error != "" {
		t.Fatalf("database lost after failed boots: %v", r)
	}
	if _, err := os.Stat(filepath.Join(h.dir, "db-1.sqlite")); err != nil {
		t.Fatal(err)
	}
}

// A file whose header and schema read fine but whose pages are damaged is
// refused before it is staged (review: boot replicated damage).
func TestBootRejectsDamagedPages(t *testing.T) {
	src := newHarness(t)
	src.apply(cmd("a", false, "CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT)",
		"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 2000) INSERT INTO big (v) SELECT printf('%0200d', i) FROM n"))
	file := backupOf(t, src, &Backup{Format: BackupDelete})
	pageSize := int(file[16])<<8 | int(file[17])
	if len(file) < 6*pageSize {
		t.Fatalf("fixture too small: %d bytes", len(file))
	}
	// Scribble over a page in the middle of the file, among the table's
	// (the first pages after the schema may be free ones, left by the
	// internal tables the copy drops).
	mid := len(file) / pageSize / 2 * pageSize
	for i := mid; i < mid+64; i++ {
		file[i] = 0xA5
	}
	h := newHarness(t)
	if _, _, err := h.s.StageBoot(bytes.NewReader(file), make(chan struct{})); !errors.Is(err, ErrInvalidSQLite) || !strings.Contains(err.Error(), "quick_check") {
		t.Fatalf("damaged upload staged: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(h.dir, bootPrefix+"*")); len(left) != 0 {
		t.Fatalf("staged files left: %v", left)
	}
}

// Installing a database removes the replaced generation only: a boot being
// staged or a backup being streamed keeps its temporary file. Open, with
// nothing running, removes those too.
func TestRemoveStaleKeepsTemporaryFilesWhileRunning(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"db-1.sqlite", "db-1.sqlite-wal", "db-2.sqlite", "boot-7.tmp", "backup-9.tmp", "db-3.sqlite.tmp"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	list := func() string {
		ents, _ := os.ReadDir(dir)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return strings.Join(names, " ")
	}
	if err := removeStale(dir, 2, false); err != nil {
		t.Fatal(err)
	}
	if got, want := list(), "backup-9.tmp boot-7.tmp db-2.sqlite db-3.sqlite.tmp"; got != want {
		t.Fatalf("after install: %s, want %s", got, want)
	}
	if err := removeStale(dir, 2, true); err != nil {
		t.Fatal(err)
	}
	if got, want := list(), "db-2.sqlite"; got != want {
		t.Fatalf("after open: %s, want %s", got, want)
	}
}

// A BOOT proposal retried after it did get in answers its first result
// instead of failing on the staged file it already consumed.
func TestBootRequestIDAppliesOnce(t *testing.T) {
	src := fixture(t)
	file := backupOf(t, src, &Backup{Format: BackupBinary})
	h := newHarness(t)
	name, _, err := h.s.StageBoot(bytes.NewReader(file), make(chan struct{}))
	if err != nil {
		t.Fatal(err)
	}
	boot, _ := proto.Marshal(&cmdpb.Command{Version: CommandVersion, RequestId: []byte("boot-1"), Type: cmdpb.Command_TYPE_BOOT, BootFile: name})
	first := h.apply(boot)[0]
	h.apply(cmd("w", false, "INSERT INTO bar VALUES (43)"))
	again := h.apply(boot)[0]
	if first.Error != "" || again.Error != "" || again.RaftIndex != first.RaftIndex {
		t.Fatalf("first %v, repeat %v", first, again)
	}
	if r := h.query("SELECT group_concat(x) FROM bar").Results[0]; r.Rows[0].Values[0].GetS() != "42,43" {
		t.Fatalf("bar = %v", r)
	}
}
