package testdb

import (
	"bytes"
	"compress/gzip"
	"database/sql"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// File's database, through Gzip and back, holds the rows in order.
func TestFileAndGzip(t *testing.T) {
	zr, err := gzip.NewReader(bytes.NewReader(Gzip(t, File(t, "a", "b"))))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "back.sqlite")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var got string
	if err := db.QueryRow("SELECT group_concat(v, ',') FROM (SELECT v FROM t ORDER BY id)").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != strings.Join([]string{"a", "b"}, ",") {
		t.Fatalf("rows %q", got)
	}
}
