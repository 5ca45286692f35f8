package sm

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// Change data capture inside apply.
//
// SQLite's pre-update hook, registered on the writer connection when
// Config.Capture is set, records every row a client statement changes, in
// the "main" database, outside Skiff's own tables (__skiff_*) and SQLite's
// (sqlite_*). Rows changed by triggers that a client statement fires are
// captured too: they are changes of the client's tables that the
// statement made, as rqlite's hook (which does not look at the trigger
// depth) reports them. The values are recorded by position inside the
// hook (no SQL may run there) and named after the statement returns, from
// PRAGMA table_xinfo on the writer, which sees the transaction's schema.
//
// What reaches the sink is exactly what the transaction commits:
//   - a statement that fails and that SQLite undoes (ABORT, the default)
//     drops the events it produced; one whose changes SQLite keeps (OR
//     FAIL, RAISE(FAIL) after rows were changed) keeps them;
//   - a request with transaction set that fails rolls back to its
//     savepoint and drops all its events;
//   - a statement that rolls the whole SQLite transaction back (INSERT OR
//     ROLLBACK) drops everything captured since the transaction began;
//     the entries redone after it are captured again;
//   - Capture is called right before every COMMIT of the apply
//     transaction with the groups of the entries it commits.
//
// A boot entry replaces the whole database and captures nothing (the
// sink is not told; the entries around it are captured). A snapshot
// install captures nothing either: the sink is told with Installed.
//
// Known gaps, all rare: a statement that fails under OR FAIL (or
// RAISE(FAIL)) before changing a row of its own table, after its triggers
// changed other rows, keeps those rows in SQLite but not in the capture
// (sqlite3_changes() cannot tell it from an undone statement); VIRTUAL
// generated columns are left out of the images (the hook cannot read
// them); the shadow tables of virtual tables (FTS, R*Tree) are reported
// as the hook reports them, as rqlite does; a statement string that
// changes rows and then drops columns of the same table names the values
// it cannot match "column<N>".

// ChangeOp is a row change's kind.
type ChangeOp uint8

// The kinds of row change.
const (
	ChangeInsert ChangeOp = 1
	ChangeUpdate ChangeOp = 2
	ChangeDelete ChangeOp = 3
)

// String returns "INSERT", "UPDATE" or "DELETE".
func (o ChangeOp) String() string {
	switch o {
	case ChangeInsert:
		return "INSERT"
	case ChangeUpdate:
		return "UPDATE"
	case ChangeDelete:
		return "DELETE"
	}
	return "ChangeOp(" + strconv.Itoa(int(o)) + ")"
}

// Column is one column of a row image.
type Column struct {
	Name  string
	Value any // nil, int64, float64, string (TEXT), []byte (BLOB)
}

// ChangeEvent is one row changed by a client statement (SQLite's pre-update
// hook).
type ChangeEvent struct {
	Op       ChangeOp
	Table    string
	OldRowID int64    // UPDATE, DELETE
	NewRowID int64    // INSERT, UPDATE
	Before   []Column // UPDATE, DELETE; nil when RowIDsOnly
	After    []Column // INSERT, UPDATE; nil when RowIDsOnly
}

// ChangeGroup is the changes one client request made: one per EXECUTE
// entry, one per request inside a BATCH entry (Request = its position in
// the batch, 0 otherwise). A request that changed no row (after the table
// filter) yields no group.
type ChangeGroup struct {
	Index      uint64 // the Raft index of the entry
	Request    uint32
	CommitTime int64 // unix microseconds at apply on this node (rqlite's commit_timestamp)
	Events     []ChangeEvent
}

// ChangeSink receives what the state machine captures. Every method is
// called on Dragonboat's apply goroutine (Update / RecoverFromSnapshot).
type ChangeSink interface {
	// Capture is called before each COMMIT of the apply transaction with
	// the groups applied in it, in (Index, Request) order; it must have
	// made them durable when it returns (the SQLite commit follows, and a
	// crash after it never re-applies these entries). A re-apply after a
	// crash before the commit calls it again with the same groups: writes
	// must be idempotent (keyed by Index, Request). An error is a storage
	// fault (the node stops). A transaction that captured no group does
	// not call it. The sink owns groups once called.
	Capture(groups []ChangeGroup) error
	// HighWater is called when a CDC high-water entry applies: every
	// index <= hwm was acknowledged by the sink. It is called right after
	// the Capture of the transaction that applies the entry (so after the
	// groups of every index below it). It must not block.
	HighWater(hwm uint64)
	// Installed is called after a snapshot at index was installed: this
	// node never applied (and never captured) the entries up to index. It
	// must not block.
	Installed(index uint64)
}

// OpenedSink is an optional ChangeSink extension: Opened is called on
// every open of the state machine, before it applies anything and before
// the applied index is published, with the index it opened at (entries up
// to it were applied before, maybe without capture: a sink created now
// never saw them).
type OpenedSink interface {
	Opened(applied uint64)
}

// CaptureConfig turns on change data capture (Config.Capture).
type CaptureConfig struct {
	Sink ChangeSink
	// TableFilter, when set, keeps only tables whose name it matches
	// (rqlite's table_filter).
	TableFilter *regexp.Regexp
	// RowIDsOnly drops the row images (rqlite's row_ids_only).
	RowIDsOnly bool
}

func (c *CaptureConfig) validate() error {
	if !captureSupported {
		return fmt.Errorf("%w: this build lacks the sqlite_preupdate_hook tag", ErrCaptureUnsupported)
	}
	if c.Sink == nil {
		return fmt.Errorf("%w: Capture.Sink is nil", ErrInvalidConfig)
	}
	return nil
}

// capture is the capture state of the apply path. A nil *capture (Capture
// not configured) does nothing: every method is safe on nil, so the apply
// path calls them unconditionally and pays a nil check.
type capture struct {
	cfg CaptureConfig
	// keep caches TableFilter's verdict per table name.
	keep map[string]bool
	// names caches each table's columns; it is cleared whenever the
	// schema changes.
	names map[string]*tableColumns
	// events are the current request's changes. stmtStart is where the
	// SQLite statement running now began (moved by the authorizer at each
	// prepare, so a multi-statement string marks each of its statements);
	// events before named have their column names.
	events           []ChangeEvent
	stmtStart, named int
	// groups are the requests captured in the open transaction;
	// groupsHint sizes the next transaction's from the last one's.
	groups     []ChangeGroup
	groupsHint int
	// hwm is the highest high-water mark applied in the open transaction.
	hwm    uint64
	hasHWM bool
	// err is a failure inside the hook, reported when the statement ends.
	err error
	// now stamps CommitTime (tests pin it).
	now func() time.Time
	hookState
}

func newCapture(cfg CaptureConfig) *capture {
	return &capture{cfg: cfg, keep: map[string]bool{}, names: map[string]*tableColumns{}, now: time.Now}
}

// mark notes that a SQLite statement of a client statement is being
// prepared: the changes it makes start here.
func (c *capture) mark() {
	if c != nil {
		c.stmtStart = len(c.events)
	}
}

// endStatement closes a client statement: it drops the events SQLite undid
// when the statement failed, and names the columns of what remains. A
// failed statement's last SQLite statement was undone unless it kept its
// changes (OR FAIL): then sqlite3_changes() counts them, where an undone
// statement sets it to 0.
func (c *capture) endStatement(conn *sqlite3.SQLiteConn, failed bool) error {
	if c == nil {
		return nil
	}
	if err := c.err; err != nil {
		c.err = nil
		return fmt.Errorf("capture: %w", err)
	}
	if failed && len(c.events) > c.stmtStart && c.changes() == 0 {
		c.truncate(c.stmtStart)
	}
	return c.resolve(conn)
}

func (c *capture) truncate(n int) {
	clear(c.events[n:])
	c.events = c.events[:n]
	c.stmtStart = min(c.stmtStart, n)
	c.named = min(c.named, n)
}

// schemaChanged forgets the column names: a client statement changed the
// schema.
func (c *capture) schemaChanged() {
	if c != nil {
		clear(c.names)
	}
}

// dropRequest forgets the current request's changes: its savepoint was
// rolled back, with any schema change it made.
func (c *capture) dropRequest() {
	if c != nil {
		c.truncate(0)
		clear(c.names)
	}
}

// endRequest makes the current request's changes the group (index, k).
func (c *capture) endRequest(index uint64, k int) {
	if c == nil {
		return
	}
	if len(c.events) > 0 {
		if c.groups == nil {
			c.groups = make([]ChangeGroup, 0, c.groupsHint)
		}
		c.groups = append(c.groups, ChangeGroup{Index: index, Request: uint32(k), Events: c.events})
		c.events = nil
	}
	c.stmtStart, c.named = 0, 0
}

// reset forgets everything not yet flushed: the transaction it belonged to
// was rolled back (or never begun).
func (c *capture) reset() {
	if c == nil {
		return
	}
	c.truncate(0)
	clear(c.groups)
	c.groups = c.groups[:0]
	c.hwm, c.hasHWM, c.err = 0, false, nil
}

// rolledBack forgets everything not yet flushed, and the column names: a
// client statement rolled the transaction back, with any schema change
// made in it.
func (c *capture) rolledBack() {
	if c != nil {
		c.reset()
		clear(c.names)
	}
}

// highWater records a high-water mark applied in the open transaction.
func (c *capture) highWater(hwm uint64) {
	if c == nil {
		return
	}
	c.hwm, c.hasHWM = max(c.hwm, hwm), true
}

// flush hands the open transaction's groups to the sink, right before it
// commits, then the high-water mark applied in it.
func (c *capture) flush() error {
	if c == nil {
		return nil
	}
	if len(c.groups) > 0 {
		ts := c.now().UnixMicro()
		for i := range c.groups {
			c.groups[i].CommitTime = ts
		}
		groups := c.groups
		c.groups, c.groupsHint = nil, len(groups) // the sink owns them now
		if err := c.cfg.Sink.Capture(groups); err != nil {
			return fmt.Errorf("capture: %w", err)
		}
	}
	if c.hasHWM {
		c.cfg.Sink.HighWater(c.hwm)
		c.hwm, c.hasHWM = 0, false
	}
	return nil
}

// opened tells an OpenedSink the index the state machine opened at.
func (c *capture) opened(applied uint64) {
	if c == nil {
		return
	}
	if o, ok := c.cfg.Sink.(OpenedSink); ok {
		o.Opened(applied)
	}
}

// installed tells the sink that a snapshot at index replaced the database.
func (c *capture) installed(index uint64) {
	if c == nil {
		return
	}
	c.reset()
	clear(c.names)
	c.cfg.Sink.Installed(index)
}

// resolve names the columns of the events not yet named.
func (c *capture) resolve(conn *sqlite3.SQLiteConn) error {
	for i := c.named; i < len(c.events); i++ {
		ev := &c.events[i]
		if ev.Before == nil && ev.After == nil {
			continue
		}
		t, err := c.table(conn, ev.Table)
		if err != nil {
			return err
		}
		ev.Before = t.name(ev.Before)
		ev.After = t.name(ev.After)
	}
	c.named = len(c.events)
	return nil
}

// tableColumns is what capture knows of a table's columns, in the order of
// the pre-update hook's values: table_xinfo lists generated columns too,
// which the hook counts, where table_info does not.
type tableColumns struct {
	names []string
	// virtual marks VIRTUAL generated columns: not stored, the hook cannot
	// read them, and the images leave them out.
	virtual    []bool
	anyVirtual bool
}

// name names cols by position, and drops the virtual columns.
func (t *tableColumns) name(cols []Column) []Column {
	if cols == nil {
		return nil
	}
	for i := range cols {
		if i < len(t.names) {
			cols[i].Name = t.names[i]
		} else {
			// The table lost columns later in the same statement
			// string (or was dropped): name the value by position.
			cols[i].Name = "column" + strconv.Itoa(i+1)
		}
	}
	if !t.anyVirtual {
		return cols
	}
	out := cols[:0]
	for i, col := range cols {
		if i >= len(t.virtual) || !t.virtual[i] {
			out = append(out, col)
		}
	}
	clear(cols[len(out):])
	return out
}

// table returns what capture knows of table's columns.
func (c *capture) table(conn *sqlite3.SQLiteConn, table string) (*tableColumns, error) {
	if t, ok := c.names[table]; ok {
		return t, nil
	}
	rows, err := conn.QueryContext(context.Background(), "SELECT name, hidden FROM pragma_table_xinfo(?, 'main') ORDER BY cid",
		[]driver.NamedValue{{Ordinal: 1, Value: table}})
	if err != nil {
		return nil, fmt.Errorf("capture: columns of %q: %w", table, err)
	}
	defer rows.Close()
	t := &tableColumns{}
	dest := make([]driver.Value, 2)
	for {
		err := rows.Next(dest)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("capture: columns of %q: %w", table, err)
		}
		hidden, _ := dest[1].(int64)
		t.names = append(t.names, str(dest[0]))
		t.virtual = append(t.virtual, hidden == 2)
		t.anyVirtual = t.anyVirtual || hidden == 2
	}
	c.names[table] = t
	return t, nil
}

// reportHighWater tells the sink the high-water mark stored in the live
// database, after an open or a snapshot install: a node that installed a
// snapshot did not apply the CDC_HWM entries it covers, and without the
// mark would take the changes it never captured for undelivered ones.
func (s *StateMachine) reportHighWater() error {
	if s.cap == nil {
		return nil
	}
	hwm, err := queryInt64(s.w.c, "SELECT hwm FROM "+cdcTable+" WHERE id = 1")
	if err != nil {
		return fmt.Errorf("%w: read CDC high-water mark: %w", ErrStorage, err)
	}
	if hwm > 0 {
		s.cap.cfg.Sink.HighWater(uint64(hwm))
	}
	return nil
}

// CaptureSupported reports whether this build can capture changes (it was
// built with the sqlite_preupdate_hook tag), so that a daemon configured
// for CDC refuses to start instead of failing when the replica opens.
func CaptureSupported() bool { return captureSupported }
