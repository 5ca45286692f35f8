package rqjson

import (
	"regexp"

	"github.com/skiffdb/skiff/sm/cmdpb"
)

// disallowedPragma matches the PRAGMAs rqlite refuses (API.md 1.6):
// they change durability or locking under the database's feet.
var disallowedPragma = regexp.MustCompile(`(?i)^\s*pragma\s+("?\w+"?\s*\.\s*)?("?(journal_mode|wal_autocheckpoint|synchronous|query_only)"?\s*=|"?wal_checkpoint\b)`)

// ErrTextDisallowedPragma is rqlite's request-level error for a refused
// PRAGMA: answered as {"results":[],"error":"disallowed pragma"}.
const ErrTextDisallowedPragma = "disallowed pragma"

// HasDisallowedPragma reports whether any statement is a PRAGMA rqlite
// refuses (API.md 1.6). Every entry point that takes statements (HTTP,
// NATS ingest) checks it before the request reaches the log.
func HasDisallowedPragma(stmts []*cmdpb.Statement) bool {
	for _, s := range stmts {
		if disallowedPragma.MatchString(s.GetSql()) {
			return true
		}
	}
	return false
}
