//go:build sqlite_column_metadata

package sm

import sqlite3 "github.com/mattn/go-sqlite3"

// QualifyColumnsSupported reports whether this build can name a result
// column's table (SQLite compiled with SQLITE_ENABLE_COLUMN_METADATA,
// which the Makefile's build tag turns on).
const QualifyColumnsSupported = true

// qualify renames cols "table.column" where SQLite knows the column's table
// (expressions have none and keep their name).
func qualify(stmt *sqlite3.SQLiteStmt, cols []string) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c
		if t := stmt.ColumnTableName(i); t != "" {
			out[i] = t + "." + c
		}
	}
	return out
}
