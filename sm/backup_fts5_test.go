//go:build sqlite_fts5

package sm

import "testing"

// FTS5, as rqlite's SQLite has it (the Makefile builds with sqlite_fts5).
func TestBackupSQLDumpFTS5(t *testing.T) {
	vtabRoundTrip(t, []string{
		"CREATE VIRTUAL TABLE notes USING fts5(subject, body)",
		"INSERT INTO notes (rowid, subject, body) VALUES (5, 'five', 'raft keeps replicas identical'), (11, 'eleven', 'sqlite on every node')",
		// Contentless: the index is all there is.
		"CREATE VIRTUAL TABLE cl USING fts5(body, content='')",
		"INSERT INTO cl (rowid, body) VALUES (3, 'contentless words')",
		// External content: the index of another table's rows.
		"CREATE TABLE src (id INTEGER PRIMARY KEY, body TEXT)",
		"INSERT INTO src VALUES (8, 'external body text')",
		"CREATE VIRTUAL TABLE ext USING fts5(body, content='src', content_rowid='id')",
		"INSERT INTO ext (rowid, body) VALUES (8, 'external body text')",
		// Read-only: derived from notes, nothing of its own to restore.
		"CREATE VIRTUAL TABLE voc USING fts5vocab(notes, 'row')",
	}, map[string]string{
		"SELECT rowid, 'x' FROM cl WHERE cl MATCH 'words'":              "3 x",
		"SELECT rowid, body FROM ext WHERE ext MATCH 'external'":        "8 external body text",
		"SELECT term, doc FROM voc WHERE term = 'raft'":                 "raft 1",
		"SELECT rowid, subject FROM notes WHERE notes MATCH 'replicas'": "5 five",
		"SELECT rowid, subject FROM notes WHERE notes MATCH 'node'":     "11 eleven",
	})
}
