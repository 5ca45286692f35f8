package sm

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
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
