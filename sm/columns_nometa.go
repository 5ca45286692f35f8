//go:build !sqlite_column_metadata

package sm

import sqlite3 "github.com/mattn/go-sqlite3"

// QualifyColumnsSupported reports whether this build can name a result
// column's table; this one was built without the sqlite_column_metadata tag
// (the Makefile sets it), so qualify_columns is refused by the gateway.
const QualifyColumnsSupported = false

func qualify(_ *sqlite3.SQLiteStmt, cols []string) []string { return cols }
