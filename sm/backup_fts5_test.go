//go:build sqlite_fts5

package sm

import "testing"

// FTS5, as rqlite's SQLite has it (the Makefile builds with sqlite_fts5).
func TestBackupSQLDumpFTS5(t *testing.T) {
	vtabRoundTrip(t, []string{
		"CREATE VIRTUAL TABLE notes USING fts5(subject, body)",
		"INSERT INTO notes (rowid, subject, body) VALUES (5, 'five', 'raft keeps replicas identical'), (11, 'eleven', 'sqlite on every node')",
	}, map[string]string{
		"SELECT rowid, subject FROM notes WHERE notes MATCH 'replicas'": "5 five",
		"SELECT rowid, subject FROM notes WHERE notes MATCH 'node'":     "11 eleven",
	})
}
