package rqjson

import (
	"testing"

	"github.com/skiffdb/skiff/sm/cmdpb"
)

func TestHasDisallowedPragma(t *testing.T) {
	for sql, want := range map[string]bool{
		"PRAGMA journal_mode=DELETE":          true,
		"  pragma main.synchronous = 0":       true,
		`PRAGMA "wal_autocheckpoint"=10`:      true,
		"PRAGMA wal_checkpoint(TRUNCATE)":     true,
		"PRAGMA query_only = 1":               true,
		"PRAGMA journal_mode":                 false, // reading it is allowed
		"PRAGMA foreign_keys=ON":              false,
		"SELECT 'PRAGMA journal_mode=WAL'":    false,
		"INSERT INTO t VALUES('synchronous')": false,
	} {
		got := HasDisallowedPragma([]*cmdpb.Statement{{Sql: "SELECT 1"}, {Sql: sql}})
		if got != want {
			t.Errorf("%q: %v, want %v", sql, got, want)
		}
	}
}
