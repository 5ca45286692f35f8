package sm

import (
	"errors"
	"regexp"
)

// This file declares the CDC capture contract of issue 15 (types only) so
// that actors/cdc compiles; the sm helper's branch holds the real ones and
// replaces this file at merge.

// ErrCaptureUnsupported is returned by New/Open when Capture is set in a
// build without the sqlite_preupdate_hook tag.
var ErrCaptureUnsupported = errors.New("CDC capture needs a build with the sqlite_preupdate_hook tag")

// ChangeOp is a row change's kind.
type ChangeOp uint8

// The row change kinds.
const (
	ChangeInsert ChangeOp = 1
	ChangeUpdate ChangeOp = 2
	ChangeDelete ChangeOp = 3
)

// String is "INSERT", "UPDATE" or "DELETE".
func (o ChangeOp) String() string {
	switch o {
	case ChangeInsert:
		return "INSERT"
	case ChangeUpdate:
		return "UPDATE"
	case ChangeDelete:
		return "DELETE"
	}
	return "UNKNOWN"
}

// Column is one column of a row image.
type Column struct {
	Name  string
	Value any // nil, int64, float64, string (TEXT), []byte (BLOB)
}

// ChangeEvent is one row changed by a client statement (SQLite's pre-update hook).
type ChangeEvent struct {
	Op       ChangeOp
	Table    string
	OldRowID int64    // UPDATE, DELETE
	NewRowID int64    // INSERT, UPDATE
	Before   []Column // UPDATE, DELETE; nil when RowIDsOnly
	After    []Column // INSERT, UPDATE; nil when RowIDsOnly
}

// ChangeGroup is the changes one client request made: one per EXECUTE entry, one per request
// inside a BATCH entry (Request = its position in the batch, 0 otherwise). A request that
// changed no row (after the table filter) yields no group.
type ChangeGroup struct {
	Index      uint64 // the Raft index of the entry
	Request    uint32
	CommitTime int64 // unix microseconds at apply on this node (rqlite's commit_timestamp)
	Events     []ChangeEvent
}

// ChangeSink receives what the state machine captures. Every method is called on Dragonboat's
// apply goroutine (Update / RecoverFromSnapshot).
type ChangeSink interface {
	// Capture is called before each COMMIT of the apply transaction with the groups applied in
	// it, in (Index, Request) order; it must have made them durable when it returns (the
	// SQLite commit follows, and a crash after it never re-applies these entries). A re-apply
	// after a crash before the commit calls it again with the same groups: writes must be
	// idempotent (keyed by Index, Request). An error is a storage fault (the node stops).
	Capture(groups []ChangeGroup) error
	// HighWater is called when a CDC high-water entry applies: every index <= hwm was
	// acknowledged by the sink. It must not block.
	HighWater(hwm uint64)
	// Installed is called after a snapshot at index was installed: this node never applied
	// (and never captured) the entries up to index. It must not block.
	Installed(index uint64)
}

// CaptureConfig turns on CDC capture.
type CaptureConfig struct {
	Sink ChangeSink
	// TableFilter, when set, keeps only tables whose name it matches (rqlite's table_filter).
	TableFilter *regexp.Regexp
	// RowIDsOnly drops the row images (rqlite's row_ids_only).
	RowIDsOnly bool
}
