//go:build sqlite_preupdate_hook

package sm

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	dbsm "github.com/lni/dragonboat/v4/statemachine"
	"google.golang.org/protobuf/proto"

	"github.com/skiffdb/skiff/sm/cmdpb"
)

// fakeSink records what the state machine hands it, in order.
type fakeSink struct {
	calls     []string // "capture", "hwm", "installed", in order
	captures  [][]ChangeGroup
	hwms      []uint64
	installed []uint64
	// failAt makes that Capture call (1-based) fail, after recording it.
	failAt, n int
}

func (f *fakeSink) Capture(groups []ChangeGroup) error {
	f.calls = append(f.calls, "capture")
	f.captures = append(f.captures, groups)
	if f.n++; f.n == f.failAt {
		return errors.New("disk full")
	}
	return nil
}

func (f *fakeSink) HighWater(hwm uint64) {
	f.calls = append(f.calls, "hwm")
	f.hwms = append(f.hwms, hwm)
}

func (f *fakeSink) Installed(index uint64) {
	f.calls = append(f.calls, "installed")
	f.installed = append(f.installed, index)
}

// groups returns every group captured so far and forgets them.
func (f *fakeSink) take() []ChangeGroup {
	var out []ChangeGroup
	for _, c := range f.captures {
		out = append(out, c...)
	}
	f.captures, f.calls = nil, nil
	return out
}

const testCommitTime = 1_700_000_000_000_000

// newCaptureHarness opens a machine capturing into a fakeSink with a fixed
// clock; mod adjusts the capture config.
func newCaptureHarness(t *testing.T, mod func(*CaptureConfig)) (*harness, *fakeSink) {
	t.Helper()
	sink := &fakeSink{}
	h := &harness{t: t, dir: t.TempDir()}
	h.mod = func(c *Config) {
		cc := &CaptureConfig{Sink: sink}
		if mod != nil {
			mod(cc)
		}
		c.Capture = cc
	}
	h.open()
	h.pinClock()
	return h, sink
}

func (h *harness) pinClock() {
	h.s.cap.now = func() time.Time { return time.UnixMicro(testCommitTime) }
}

func cols(kv ...any) []Column {
	out := make([]Column, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, Column{Name: kv[i].(string), Value: kv[i+1]})
	}
	return out
}

func ins(table string, id int64, after []Column) ChangeEvent {
	return ChangeEvent{Op: ChangeInsert, Table: table, NewRowID: id, After: after}
}

func upd(table string, oldID, newID int64, before, after []Column) ChangeEvent {
	return ChangeEvent{Op: ChangeUpdate, Table: table, OldRowID: oldID, NewRowID: newID, Before: before, After: after}
}

func del(table string, id int64, before []Column) ChangeEvent {
	return ChangeEvent{Op: ChangeDelete, Table: table, OldRowID: id, Before: before}
}

func group(index uint64, k uint32, evs ...ChangeEvent) ChangeGroup {
	return ChangeGroup{Index: index, Request: k, CommitTime: testCommitTime, Events: evs}
}

func sameGroups(t *testing.T, what string, got, want []ChangeGroup) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %s\nwant %s", what, fmtGroups(got), fmtGroups(want))
	}
}

func fmtGroups(gs []ChangeGroup) string {
	var b strings.Builder
	for _, g := range gs {
		fmt.Fprintf(&b, "\n  [%d/%d @%d]", g.Index, g.Request, g.CommitTime)
		for _, e := range g.Events {
			fmt.Fprintf(&b, "\n    %s %s %d->%d before=%v after=%v", e.Op, e.Table, e.OldRowID, e.NewRowID, fmtCols(e.Before), fmtCols(e.After))
		}
	}
	return b.String()
}

func fmtCols(cs []Column) string {
	if cs == nil {
		return "nil"
	}
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = fmt.Sprintf("%s=%#v", c.Name, c.Value)
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// model replays captured events and checks them against the tables: what
// was captured is exactly what was committed.
type model map[string]map[int64][]Column

func (m model) replay(t *testing.T, gs []ChangeGroup) {
	t.Helper()
	for _, g := range gs {
		for _, e := range g.Events {
			rows := m[e.Table]
			if rows == nil {
				rows = map[int64][]Column{}
				m[e.Table] = rows
			}
			if e.Op != ChangeInsert {
				prev, ok := rows[e.OldRowID]
				if !ok || !reflect.DeepEqual(prev, e.Before) {
					t.Fatalf("%s %s rowid %d: before %s, model has %s (present %v)", e.Op, e.Table, e.OldRowID, fmtCols(e.Before), fmtCols(prev), ok)
				}
				delete(rows, e.OldRowID)
			}
			if e.Op != ChangeDelete {
				if _, ok := rows[e.NewRowID]; ok {
					t.Fatalf("%s %s rowid %d: the row exists already", e.Op, e.Table, e.NewRowID)
				}
				rows[e.NewRowID] = e.After
			}
		}
	}
}

// check compares the model of each table with its rows.
func (m model) check(t *testing.T, h *harness, tables ...string) {
	t.Helper()
	for _, table := range tables {
		r := h.query("SELECT rowid AS __rowid, * FROM " + table).Results[0]
		if r.Error != "" {
			t.Fatalf("%s: %s", table, r.Error)
		}
		if len(r.Rows) != len(m[table]) {
			t.Fatalf("%s: %d rows, the captured changes give %d", table, len(r.Rows), len(m[table]))
		}
		for _, row := range r.Rows {
			id := row.Values[0].GetI()
			var want []Column
			for i, v := range row.Values[1:] {
				want = append(want, Column{Name: r.Columns[i+1], Value: goValue(v)})
			}
			if got := m[table][id]; !reflect.DeepEqual(got, want) {
				t.Fatalf("%s rowid %d: captured %s, table has %s", table, id, fmtCols(got), fmtCols(want))
			}
		}
	}
}

func goValue(v *cmdpb.Value) any {
	switch x := v.GetV().(type) {
	case *cmdpb.Value_I:
		return x.I
	case *cmdpb.Value_D:
		return x.D
	case *cmdpb.Value_S:
		return x.S
	case *cmdpb.Value_Y:
		if x.Y == nil {
			return []byte{}
		}
		return x.Y
	}
	return nil
}

// Every kind of row change with every value type: the images, the row
// IDs, one group per request; DELETE without WHERE (which SQLite would do
// as a truncation without the hook) still reports every row.
func TestCaptureRowImages(t *testing.T) {
	h, sink := newCaptureHarness(t, nil)
	h.apply(cmd("", false, "CREATE TABLE t (id INTEGER PRIMARY KEY, i INTEGER, r REAL, s TEXT, b BLOB, n)"))
	sameGroups(t, "DDL", sink.take(), nil)
	row1 := func(id int64, s string) []Column {
		return cols("id", id, "i", int64(42), "r", 1.5, "s", s, "b", []byte{0, 0xff}, "n", nil)
	}
	m := model{}
	for _, c := range []struct {
		name string
		sql  []string
		want func(index uint64) []ChangeGroup
	}{
		{"insert", []string{"INSERT INTO t VALUES (1, 42, 1.5, 'héllo', x'00ff', NULL)"}, func(i uint64) []ChangeGroup {
			return []ChangeGroup{group(i, 0, ins("t", 1, row1(1, "héllo")))}
		}},
		{"insert empty text and blob", []string{"INSERT INTO t VALUES (2, -9223372036854775808, -0.25, '', x'', 7)"}, func(i uint64) []ChangeGroup {
			return []ChangeGroup{group(i, 0, ins("t", 2, cols("id", int64(2), "i", int64(-9223372036854775808), "r", -0.25, "s", "", "b", []byte{}, "n", int64(7))))}
		}},
		{"update", []string{"UPDATE t SET s = 'x' WHERE id = 1"}, func(i uint64) []ChangeGroup {
			return []ChangeGroup{group(i, 0, upd("t", 1, 1, row1(1, "héllo"), row1(1, "x")))}
		}},
		{"update changes the rowid", []string{"UPDATE t SET id = 10 WHERE id = 1"}, func(i uint64) []ChangeGroup {
			return []ChangeGroup{group(i, 0, upd("t", 1, 10, row1(1, "x"), row1(10, "x")))}
		}},
		{"type changes", []string{"UPDATE t SET n = 'text', i = 2.5 WHERE id = 10"}, func(i uint64) []ChangeGroup {
			after := row1(10, "x")
			after[1].Value, after[5].Value = 2.5, "text"
			return []ChangeGroup{group(i, 0, upd("t", 10, 10, row1(10, "x"), after))}
		}},
		{"delete", []string{"DELETE FROM t WHERE id = 2"}, func(i uint64) []ChangeGroup {
			return []ChangeGroup{group(i, 0, del("t", 2, cols("id", int64(2), "i", int64(-9223372036854775808), "r", -0.25, "s", "", "b", []byte{}, "n", int64(7))))}
		}},
		{"no row changed: no group", []string{"UPDATE t SET s = 'y' WHERE id = 99", "DELETE FROM t WHERE id = 99"}, func(uint64) []ChangeGroup { return nil }},
		{"several statements, one group", []string{"INSERT INTO t (id) VALUES (3)", "INSERT INTO t (id, s) VALUES (4, 'four')"}, func(i uint64) []ChangeGroup {
			nulls := func(id int64, s any) []Column {
				return cols("id", id, "i", nil, "r", nil, "s", s, "b", nil, "n", nil)
			}
			return []ChangeGroup{group(i, 0, ins("t", 3, nulls(3, nil)), ins("t", 4, nulls(4, "four")))}
		}},
		{"delete every row", []string{"DELETE FROM t"}, func(i uint64) []ChangeGroup {
			after := row1(10, "x")
			after[1].Value, after[5].Value = 2.5, "text"
			nulls := func(id int64, s any) []Column {
				return cols("id", id, "i", nil, "r", nil, "s", s, "b", nil, "n", nil)
			}
			return []ChangeGroup{group(i, 0, del("t", 3, nulls(3, nil)), del("t", 4, nulls(4, "four")), del("t", 10, after))}
		}},
	} {
		idx := h.next
		if r := h.apply(cmd("", false, c.sql...))[0]; hasError(r) {
			t.Fatalf("%s: %v", c.name, r)
		}
		got := sink.take()
		sameGroups(t, c.name, got, c.want(idx))
		m.replay(t, got)
		m.check(t, h, "t")
	}
}

func hasError(r *cmdpb.Response) bool {
	if r.Error != "" {
		return true
	}
	for _, s := range r.Results {
		if s.Error != "" {
			return true
		}
	}
	return false
}

// Failed statements: what SQLite undid is not captured, what it kept is.
// Checked by replaying the captured changes against the table after each.
func TestCaptureFailedStatements(t *testing.T) {
	h, sink := newCaptureHarness(t, nil)
	h.apply(cmd("", false, "CREATE TABLE u (id INTEGER PRIMARY KEY, v TEXT UNIQUE)", "INSERT INTO u VALUES (1, 'a')"))
	m := model{}
	m.replay(t, sink.take())
	for _, c := range []struct {
		name    string
		tx      bool
		sql     []string
		wantIDs []int64 // new row IDs captured, in order
	}{
		{"failed statement mid-request", false, []string{"INSERT INTO u VALUES (2, 'b')", "INSERT INTO u VALUES (3, 'a')", "INSERT INTO u VALUES (4, 'd')"}, []int64{2, 4}},
		{"multi-row statement aborted at its second row", false, []string{"INSERT INTO u VALUES (5, 'e'), (6, 'a')"}, nil},
		{"runtime error after a row", false, []string{"INSERT INTO u VALUES (7, 'g'), (8, abs(-9223372036854775807 - 1))"}, nil},
		{"OR FAIL keeps the rows before the failure", false, []string{"INSERT OR FAIL INTO u VALUES (9, 'i'), (10, 'a'), (11, 'k')"}, []int64{9}},
		{"string of statements: the failed one alone is undone", false, []string{"INSERT INTO u VALUES (12, 'l'); INSERT INTO u VALUES (13, 'a')"}, []int64{12}},
		{"OR IGNORE", false, []string{"INSERT OR IGNORE INTO u VALUES (14, 'a'), (15, 'o')"}, []int64{15}},
		{"OR REPLACE", false, []string{"INSERT OR REPLACE INTO u VALUES (16, 'a')"}, []int64{16}},
		{"transaction rolled back", true, []string{"INSERT INTO u VALUES (17, 'q')", "INSERT INTO u VALUES (18, 'a')"}, nil},
		{"transaction committed", true, []string{"INSERT INTO u VALUES (19, 's')", "UPDATE u SET v = 'S' WHERE id = 19"}, []int64{19, 19}},
		{"only failed statements: no group", false, []string{"INSERT INTO u VALUES (20, 'a')", "INSERT INTO nope VALUES (1)"}, nil},
	} {
		h.apply(cmd("", c.tx, c.sql...))
		got := sink.take()
		var ids []int64
		for _, g := range got {
			for _, e := range g.Events {
				if e.Op != ChangeDelete {
					ids = append(ids, e.NewRowID)
				}
			}
		}
		if !reflect.DeepEqual(ids, c.wantIDs) {
			t.Fatalf("%s: captured rows %v, want %v:%s", c.name, ids, c.wantIDs, fmtGroups(got))
		}
		if len(c.wantIDs) == 0 && len(got) != 0 {
			t.Fatalf("%s: groups without rows:%s", c.name, fmtGroups(got))
		}
		m.replay(t, got)
		m.check(t, h, "u")
	}
}

// A statement that rolls the whole SQLite transaction back (INSERT OR
// ROLLBACK) inside a coalesced BATCH: the entries before it are redone and
// captured again, and the groups the sink receives are exactly those of
// the requests that survive, once each, in order.
func TestCaptureRollbackRedoInBatch(t *testing.T) {
	h, sink := newCaptureHarness(t, nil)
	h.apply(cmd("", false, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE)", "CREATE TABLE log (msg)", "INSERT INTO t (v) VALUES ('dup')"))
	m := model{}
	m.replay(t, sink.take())
	var reqs []*cmdpb.Request
	for i := range 30 {
		if i%7 == 3 {
			reqs = append(reqs, req(false, "INSERT OR ROLLBACK INTO t (v) VALUES ('dup')"))
			continue
		}
		reqs = append(reqs, req(false, fmt.Sprintf("INSERT INTO t (v) VALUES ('v%d')", i), fmt.Sprintf("INSERT INTO log VALUES ('m%d')", i)))
	}
	lead, batch := h.next, h.next+1
	resps := h.apply(execCmd(req(false, "INSERT INTO log VALUES ('lead')")), batchCmd("b", reqs...))
	var calls []string
	calls = append(calls, sink.calls...)
	got := sink.take()
	m.replay(t, got)
	m.check(t, h, "t", "log")

	var want []struct {
		index uint64
		k     uint32
	}
	want = append(want, struct {
		index uint64
		k     uint32
	}{lead, 0})
	for k := range reqs {
		if resps[1].Batch[k].Error == "" {
			want = append(want, struct {
				index uint64
				k     uint32
			}{batch, uint32(k)})
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d groups, want %d:%s", len(got), len(want), fmtGroups(got))
	}
	for i, g := range got {
		if g.Index != want[i].index || g.Request != want[i].k {
			t.Fatalf("group %d is %d/%d, want %d/%d", i, g.Index, g.Request, want[i].index, want[i].k)
		}
		if g.Index == batch && len(g.Events) != 2 {
			t.Fatalf("group %d/%d has %d events", g.Index, g.Request, len(g.Events))
		}
	}
	// The redone lead entry was committed alone, then the batch.
	if len(calls) != 2 {
		t.Fatalf("Capture calls: %v", calls)
	}
}

// Column names come from the schema of the transaction: a table created or
// altered earlier in the same request (or statement string) is named.
func TestCaptureSchemaChangesInTheRequest(t *testing.T) {
	h, sink := newCaptureHarness(t, nil)
	i := h.next
	h.apply(cmd("", false, "CREATE TABLE n (a, b)", "INSERT INTO n VALUES (1, 2)"))
	sameGroups(t, "create then insert", sink.take(), []ChangeGroup{group(i, 0, ins("n", 1, cols("a", int64(1), "b", int64(2))))})

	i = h.next
	h.apply(cmd("", false, "CREATE TABLE m (x); INSERT INTO m VALUES (5)"))
	sameGroups(t, "one statement string", sink.take(), []ChangeGroup{group(i, 0, ins("m", 1, cols("x", int64(5))))})

	i = h.next
	h.apply(cmd("", false, "ALTER TABLE n ADD COLUMN c DEFAULT 'd'", "UPDATE n SET a = 3"))
	sameGroups(t, "add column then update", sink.take(), []ChangeGroup{group(i, 0,
		upd("n", 1, 1, cols("a", int64(1), "b", int64(2), "c", "d"), cols("a", int64(3), "b", int64(2), "c", "d")))})

	// The cache of names is per schema: a column added in one entry, an
	// insert in the next.
	h.apply(cmd("", false, "ALTER TABLE n ADD COLUMN e"))
	i = h.next
	h.apply(cmd("", false, "INSERT INTO n VALUES (4, 5, 6, 7)"))
	sameGroups(t, "added column", sink.take(), []ChangeGroup{group(i, 0, ins("n", 2, cols("a", int64(4), "b", int64(5), "c", int64(6), "e", int64(7))))})

	// Dropped and created again with other columns, in one request.
	i = h.next
	h.apply(cmd("", false, "INSERT INTO m VALUES (6)", "DROP TABLE m", "CREATE TABLE m (y, z)", "INSERT INTO m VALUES (7, 8)"))
	sameGroups(t, "recreated table", sink.take(), []ChangeGroup{group(i, 0, ins("m", 2, cols("x", int64(6))), ins("m", 1, cols("y", int64(7), "z", int64(8))))})
}

// Rows changed by triggers a client statement fires are captured, after
// the table filter; the filter and row IDs only apply at capture.
func TestCaptureTriggersFilterAndRowIDs(t *testing.T) {
	schema := []string{
		"CREATE TABLE t (id INTEGER PRIMARY KEY, v)",
		"CREATE TABLE log (id INTEGER PRIMARY KEY, what)",
		"CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN INSERT INTO log (what) VALUES ('ins ' || NEW.v); END",
		"CREATE TRIGGER t_del BEFORE DELETE ON t BEGIN INSERT INTO log (what) VALUES ('del ' || OLD.v); END",
	}
	for _, c := range []struct {
		name string
		mod  func(*CaptureConfig)
		want func(i uint64) []ChangeGroup
	}{
		{"all", nil, func(i uint64) []ChangeGroup {
			return []ChangeGroup{
				group(i, 0, ins("t", 1, cols("id", int64(1), "v", "a")), ins("log", 1, cols("id", int64(1), "what", "ins a"))),
				group(i+1, 0, ins("log", 2, cols("id", int64(2), "what", "del a")), del("t", 1, cols("id", int64(1), "v", "a"))),
			}
		}},
		{"table filter", func(c *CaptureConfig) { c.TableFilter = regexp.MustCompile(`^t$`) }, func(i uint64) []ChangeGroup {
			return []ChangeGroup{
				group(i, 0, ins("t", 1, cols("id", int64(1), "v", "a"))),
				group(i+1, 0, del("t", 1, cols("id", int64(1), "v", "a"))),
			}
		}},
		{"filter matching nothing changed", func(c *CaptureConfig) { c.TableFilter = regexp.MustCompile(`^other`) }, func(uint64) []ChangeGroup { return nil }},
		{"row IDs only", func(c *CaptureConfig) { c.RowIDsOnly = true }, func(i uint64) []ChangeGroup {
			return []ChangeGroup{
				group(i, 0, ins("t", 1, nil), ins("log", 1, nil)),
				group(i+1, 0, ins("log", 2, nil), del("t", 1, nil)),
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h, sink := newCaptureHarness(t, c.mod)
			h.apply(cmd("", false, schema...))
			sink.take()
			i := h.next
			h.apply(cmd("", false, "INSERT INTO t (v) VALUES ('a')"), cmd("", false, "DELETE FROM t"))
			sameGroups(t, c.name, sink.take(), c.want(i))
		})
	}
}

// A crash after Capture and before the commit re-applies the same entries
// at restart: Capture sees identical groups (RANDOM() included, seeded by
// the entry). The batch here commits twice (the rollback inside it commits
// what was redone): the crash is at the second commit.
func TestCaptureReapplyAfterCrashGivesSameGroups(t *testing.T) {
	h, sink := newCaptureHarness(t, nil)
	h.apply(cmd("", false, "CREATE TABLE t (id INTEGER PRIMARY KEY, v, w)"))
	sink.take()
	first := h.next
	cmds := [][]byte{
		cmd("a", false, "INSERT INTO t (v, w) VALUES (random(), randomblob(8))"),
		cmd("b", false, "INSERT INTO t (v) VALUES ('b')"),
		batchCmd("c", req(false, "INSERT INTO t (v) VALUES ('x')"), req(false, "INSERT OR ROLLBACK INTO t (id) VALUES (1)"), req(true, "UPDATE t SET w = random()")),
		cmd("d", false, "DELETE FROM t WHERE id = 1"),
	}
	ents := func(after uint64) []dbsm.Entry {
		var out []dbsm.Entry
		for i, c := range cmds {
			if idx := first + uint64(i); idx > after {
				out = append(out, dbsm.Entry{Index: idx, Cmd: c})
			}
		}
		return out
	}
	sink.failAt = 2
	if _, err := h.s.Update(ents(0)); !errors.Is(err, ErrStorage) {
		t.Fatalf("Update with a failing sink = %v, want ErrStorage", err)
	}
	if len(sink.captures) != 2 {
		t.Fatalf("%d Capture calls before the crash, want 2", len(sink.captures))
	}
	committed, lost := sink.captures[0], sink.captures[1]
	sink.take()
	if len(committed) != 2 || committed[1].Index != first+1 || len(lost) != 3 {
		t.Fatalf("first commit:%s\nsecond:%s", fmtGroups(committed), fmtGroups(lost))
	}
	_ = h.s.Close()
	idx := h.open()
	if idx != first+1 {
		t.Fatalf("reopened at %d, want %d", idx, first+1)
	}
	h.pinClock()
	if _, err := h.s.Update(ents(idx)); err != nil {
		t.Fatal(err)
	}
	sameGroups(t, "re-applied", sink.take(), lost)
}

// A CDC_HWM entry reaches the sink after the groups committed with it, and
// writes nothing; without capture it applies as a no-op.
func TestCaptureHighWaterEntry(t *testing.T) {
	hwm := func(v uint64) []byte {
		return mustMarshal(&cmdpb.Command{Version: CommandVersion, Type: cmdpb.Command_TYPE_CDC_HWM, CdcHighWater: v})
	}
	h, sink := newCaptureHarness(t, nil)
	h.apply(cmd("", false, "CREATE TABLE t (x)"))
	sink.take()
	i := h.next
	resps := h.apply(cmd("", false, "INSERT INTO t VALUES (1)"), hwm(7), hwm(5))
	if !proto.Equal(resps[1], &cmdpb.Response{RaftIndex: i + 1}) {
		t.Fatalf("HWM response = %v", resps[1])
	}
	if want := []string{"capture", "hwm"}; !reflect.DeepEqual(sink.calls, want) || !reflect.DeepEqual(sink.hwms, []uint64{7}) {
		t.Fatalf("calls %v, marks %v", sink.calls, sink.hwms)
	}
	sink.take()
	sink.hwms = nil
	h.apply(hwm(9))
	if !reflect.DeepEqual(sink.calls, []string{"hwm"}) || !reflect.DeepEqual(sink.hwms, []uint64{9}) {
		t.Fatalf("alone: calls %v, marks %v", sink.calls, sink.hwms)
	}
	if n := h.count("t"); n != 1 {
		t.Fatalf("rows = %d", n)
	}

	plain := newHarness(t)
	i = plain.next
	if r := plain.apply(hwm(3))[0]; !proto.Equal(r, &cmdpb.Response{RaftIndex: i}) {
		t.Fatalf("HWM without capture = %v", r)
	}
}

// A snapshot install captures nothing and tells the sink; capture goes on
// against the installed schema.
func TestCaptureSnapshotInstall(t *testing.T) {
	src := newHarness(t)
	src.apply(cmd("", false, "CREATE TABLE s (a, b)", "INSERT INTO s VALUES (1, 2)"),
		mustMarshal(&cmdpb.Command{Version: CommandVersion, Type: cmdpb.Command_TYPE_CDC_HWM, CdcHighWater: 5}))
	snap, err := src.s.PrepareSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := src.s.SaveSnapshot(snap, &buf, make(chan struct{})); err != nil {
		t.Fatal(err)
	}

	h, sink := newCaptureHarness(t, nil)
	h.apply(cmd("", false, "CREATE TABLE s (other)", "INSERT INTO s VALUES (0)"))
	sink.take()
	if err := h.s.RecoverFromSnapshot(bytes.NewReader(buf.Bytes()), make(chan struct{})); err != nil {
		t.Fatal(err)
	}
	// The mark the snapshot carries follows the install: the sink acked
	// index 5 before it, though this node never applied that entry.
	if !reflect.DeepEqual(sink.calls, []string{"installed", "hwm"}) || !reflect.DeepEqual(sink.installed, []uint64{src.next - 1}) ||
		!reflect.DeepEqual(sink.hwms, []uint64{5}) {
		t.Fatalf("calls %v, installed %v, marks %v", sink.calls, sink.installed, sink.hwms)
	}
	h.next = h.s.Applied() + 1
	i := h.next
	sink.take()
	h.apply(cmd("", false, "INSERT INTO s VALUES (3, 4)"))
	sameGroups(t, "after install", sink.take(), []ChangeGroup{group(i, 0, ins("s", 2, cols("a", int64(3), "b", int64(4))))})
}

// A boot entry replaces the database and captures nothing; the entries
// around it are captured, the ones after it against the new schema.
func TestCaptureBoot(t *testing.T) {
	src := fixture(t)
	file := backupOf(t, src, &Backup{Format: BackupBinary})
	h, sink := newCaptureHarness(t, nil)
	h.apply(cmd("", false, "CREATE TABLE bar (other, cols)"))
	sink.take()
	name, _, err := h.s.StageBoot(bytes.NewReader(file), make(chan struct{}))
	if err != nil {
		t.Fatal(err)
	}
	i := h.next
	h.apply(cmd("", false, "INSERT INTO bar VALUES (1, 2)"), bootCmd(name), cmd("", false, "INSERT INTO bar (x) VALUES (43)"))
	got := sink.take()
	if len(got) != 2 || got[0].Index != i || got[1].Index != i+2 {
		t.Fatalf("groups:%s", fmtGroups(got))
	}
	if ev := got[1].Events[0]; ev.After[len(ev.After)-1] != (Column{Name: "x", Value: int64(43)}) {
		t.Fatalf("after boot: %s", fmtCols(ev.After))
	}
}

// A retried request (same request ID) applies once and is captured once.
func TestCaptureDuplicateRequestOnce(t *testing.T) {
	h, sink := newCaptureHarness(t, nil)
	h.apply(cmd("", false, "CREATE TABLE t (x)"))
	sink.take()
	i := h.next
	h.apply(cmd("same", false, "INSERT INTO t VALUES (1)"), cmd("same", false, "INSERT INTO t VALUES (1)"))
	sameGroups(t, "retried", sink.take(), []ChangeGroup{group(i, 0, ins("t", 1, cols("x", int64(1))))})
}

func TestCaptureConfig(t *testing.T) {
	if _, err := New(Config{Dir: t.TempDir(), Capture: &CaptureConfig{}}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("nil sink: %v", err)
	}
	s, err := New(Config{Dir: t.TempDir()})
	if err != nil || s.cap != nil {
		t.Fatalf("without Capture: cap %v, err %v", s.cap, err)
	}
}

// connHandle reads go-sqlite3's unexported handle; this pins the field.
func TestCaptureConnHandle(t *testing.T) {
	c, err := openWriter(t.TempDir()+"/x.db", false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if db, err := connHandle(c); err != nil || db == nil {
		t.Fatalf("connHandle = %v, %v", db, err)
	}
}

func TestChangeOpString(t *testing.T) {
	for op, want := range map[ChangeOp]string{ChangeInsert: "INSERT", ChangeUpdate: "UPDATE", ChangeDelete: "DELETE", 9: "ChangeOp(9)"} {
		if op.String() != want {
			t.Fatalf("%d: %q", op, op.String())
		}
	}
}

// WITHOUT ROWID tables report row ID 0 (SQLite's hook has none to give);
// VIRTUAL generated columns are not stored, the hook cannot read them, and
// the images leave them out; STORED ones are in.
func TestCaptureTableShapes(t *testing.T) {
	h, sink := newCaptureHarness(t, nil)
	h.apply(cmd("", false, "CREATE TABLE w (k TEXT PRIMARY KEY, v) WITHOUT ROWID",
		"CREATE TABLE g (id INTEGER PRIMARY KEY, a, b AS (a * 2) VIRTUAL, c AS (a + 1) STORED, d)"))
	sink.take()
	i := h.next
	h.apply(cmd("", false, "INSERT INTO w VALUES ('x', 1)", "UPDATE w SET v = 2", "DELETE FROM w",
		"INSERT INTO g (a, d) VALUES (10, 'dd')", "UPDATE g SET a = 20", "DELETE FROM g"))
	g := func(a, c int64) []Column { return cols("id", int64(1), "a", a, "c", c, "d", "dd") }
	sameGroups(t, "shapes", sink.take(), []ChangeGroup{group(i, 0,
		ins("w", 0, cols("k", "x", "v", int64(1))),
		upd("w", 0, 0, cols("k", "x", "v", int64(1)), cols("k", "x", "v", int64(2))),
		del("w", 0, cols("k", "x", "v", int64(2))),
		ins("g", 1, g(10, 11)),
		upd("g", 1, 1, g(10, 11), g(20, 21)),
		del("g", 1, g(20, 21)),
	)})
}

// REPLACE and UPSERT report the rows they delete and update: replaying the
// captured changes gives the table.
func TestCaptureConflictResolution(t *testing.T) {
	h, sink := newCaptureHarness(t, nil)
	h.apply(cmd("", false, "CREATE TABLE u (id INTEGER PRIMARY KEY, v TEXT UNIQUE)", "INSERT INTO u VALUES (1, 'a'), (2, 'b')"))
	m := model{}
	m.replay(t, sink.take())
	i := h.next
	h.apply(cmd("", false, "INSERT OR REPLACE INTO u VALUES (2, 'z')", "REPLACE INTO u VALUES (3, 'a')",
		"INSERT INTO u VALUES (2, 'q') ON CONFLICT(id) DO UPDATE SET v = excluded.v"))
	got := sink.take()
	sameGroups(t, "conflicts", got, []ChangeGroup{group(i, 0,
		del("u", 2, cols("id", int64(2), "v", "b")), ins("u", 2, cols("id", int64(2), "v", "z")),
		del("u", 1, cols("id", int64(1), "v", "a")), ins("u", 3, cols("id", int64(3), "v", "a")),
		upd("u", 2, 2, cols("id", int64(2), "v", "z"), cols("id", int64(2), "v", "q")),
	)})
	m.replay(t, got)
	m.check(t, h, "u")
}

// A schema change rolled back (a transaction request that fails, a
// statement that rolls the whole transaction back) takes the column names
// it gave with it.
func TestCaptureNamesAfterRolledBackSchemaChange(t *testing.T) {
	h, sink := newCaptureHarness(t, nil)
	h.apply(cmd("", false, "CREATE TABLE t (a, b)", "CREATE TABLE u (x UNIQUE)", "INSERT INTO u VALUES (1)"))
	sink.take()
	h.apply(cmd("", true, "DROP TABLE t", "CREATE TABLE t (p, q)", "INSERT INTO t VALUES (1, 2)", "INSERT INTO nope VALUES (1)"))
	i := h.next
	h.apply(cmd("", false, "INSERT INTO t VALUES (3, 4)"))
	sameGroups(t, "after a failed transaction", sink.take(), []ChangeGroup{group(i, 0, ins("t", 1, cols("a", int64(3), "b", int64(4))))})

	// The request that rolls back is skipped when the batch is redone:
	// its schema change is gone.
	h.apply(cmd("", false, "DROP TABLE t", "CREATE TABLE t (p, q)", "INSERT INTO t VALUES (5, 6)", "INSERT OR ROLLBACK INTO u VALUES (1)"))
	i = h.next
	h.apply(cmd("", false, "INSERT INTO t VALUES (7, 8)"))
	sameGroups(t, "after a rollback", sink.take(), []ChangeGroup{group(i, 0, ins("t", 2, cols("a", int64(7), "b", int64(8))))})
}

// Random mixes of writes that succeed, fail, fail keeping rows (OR FAIL),
// roll a transaction request back or the whole SQLite transaction back,
// fire triggers, in separate entries and coalesced BATCH entries: after
// every Update, replaying everything captured gives exactly the tables.
func TestCaptureRandomWorkloadMatchesTables(t *testing.T) {
	for seed := range uint64(5) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { randomWorkload(t, seed) })
	}
}

func randomWorkload(t *testing.T, seed uint64) {
	h, sink := newCaptureHarness(t, nil)
	h.apply(cmd("", false,
		"CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER UNIQUE, s TEXT)",
		"CREATE TABLE log (id INTEGER PRIMARY KEY, what TEXT)",
		"CREATE TRIGGER t_upd AFTER UPDATE ON t WHEN NEW.v % 7 = 0 BEGIN INSERT INTO log (what) VALUES ('upd ' || NEW.id); END",
		"CREATE TRIGGER t_del BEFORE DELETE ON t WHEN OLD.v % 5 = 0 BEGIN DELETE FROM log WHERE id % 3 = 0; END"))
	m := model{}
	m.replay(t, sink.take())
	rng := newTestRand(seed)
	stmt := func() string {
		v := rng.Intn(60)
		switch rng.Intn(9) {
		case 0, 1:
			return fmt.Sprintf("INSERT INTO t (v, s) VALUES (%d, 's%d')", v, v)
		case 2:
			return fmt.Sprintf("INSERT INTO t (v, s) VALUES (%d, 'a'), (%d, 'b'), (%d, 'c')", v, (v+1)%60, (v+2)%60)
		case 3:
			return fmt.Sprintf("INSERT OR FAIL INTO t (v) VALUES (%d), (%d)", v, (v+3)%60)
		case 4:
			return fmt.Sprintf("UPDATE t SET v = v + %d WHERE v %% 4 = %d", rng.Intn(5)+1, rng.Intn(4))
		case 5:
			return fmt.Sprintf("UPDATE OR FAIL t SET v = %d WHERE id %% 3 = %d", v, rng.Intn(3))
		case 6:
			return fmt.Sprintf("DELETE FROM t WHERE v %% 6 = %d", rng.Intn(6))
		case 7:
			return fmt.Sprintf("INSERT OR REPLACE INTO t (id, v) VALUES (%d, %d)", rng.Intn(30)+1, v)
		}
		if rng.Intn(4) == 0 {
			return fmt.Sprintf("INSERT OR ROLLBACK INTO t (v) VALUES (%d)", v)
		}
		return fmt.Sprintf("INSERT INTO t (v) VALUES (%d); UPDATE t SET s = 'x' WHERE v = %d", v, (v+1)%60)
	}
	request := func() *cmdpb.Request {
		n := rng.Intn(3) + 1
		sqls := make([]string, n)
		for i := range sqls {
			sqls[i] = stmt()
		}
		return req(rng.Intn(3) == 0, sqls...)
	}
	for round := range 150 {
		var cmds [][]byte
		for range rng.Intn(3) + 1 {
			if rng.Intn(2) == 0 {
				cmds = append(cmds, execCmd(request()))
				continue
			}
			reqs := make([]*cmdpb.Request, rng.Intn(6)+1)
			for i := range reqs {
				reqs[i] = request()
			}
			cmds = append(cmds, batchCmd("", reqs...))
		}
		h.apply(cmds...)
		got := sink.take()
		for i := 1; i < len(got); i++ {
			a, b := got[i-1], got[i]
			if a.Index > b.Index || (a.Index == b.Index && a.Request >= b.Request) {
				t.Fatalf("round %d: groups out of order:%s", round, fmtGroups(got))
			}
		}
		m.replay(t, got)
		m.check(t, h, "t", "log")
	}
}

// testRand is a small deterministic generator (math/rand/v2's PCG).
type testRand struct{ r *rand.Rand }

func newTestRand(seed uint64) *testRand { return &testRand{rand.New(rand.NewPCG(seed, seed))} }

func (r *testRand) Intn(n int) int { return r.r.IntN(n) }
