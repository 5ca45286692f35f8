//go:build sqlite_preupdate_hook

package sm

/*
// The SQLite symbols are go-sqlite3's (built with SQLITE_ENABLE_PREUPDATE_HOOK
// under the same tag); its header is not on this package's include path, so
// the few functions used are declared here.
typedef struct sqlite3 sqlite3;
typedef struct sqlite3_value sqlite3_value;
int sqlite3_preupdate_count(sqlite3 *);
int sqlite3_preupdate_old(sqlite3 *, int, sqlite3_value **);
int sqlite3_preupdate_new(sqlite3 *, int, sqlite3_value **);
int sqlite3_value_type(sqlite3_value *);
long long sqlite3_value_int64(sqlite3_value *);
double sqlite3_value_double(sqlite3_value *);
const unsigned char *sqlite3_value_text(sqlite3_value *);
const void *sqlite3_value_blob(sqlite3_value *);
int sqlite3_value_bytes(sqlite3_value *);
int sqlite3_changes(sqlite3 *);

typedef struct {
	int type;
	int n;
	long long i;
	double d;
	const void *p;
} skiff_cell;

// skiff_row reads the old (want & 1) and the new (want & 2) image of the
// row being changed into out, the old one first, in one call from Go. It
// returns the column count, or -1 on an error. When out has fewer than the
// cells needed it reads nothing: the caller calls again with more.
static int skiff_row(sqlite3 *db, int want, skiff_cell *out, int cap) {
	int n = sqlite3_preupdate_count(db);
	int need = n * ((want & 1) + ((want >> 1) & 1));
	int side, i, k = 0;
	if (need > cap) {
		return n;
	}
	for (side = 1; side <= 2; side <<= 1) {
		if (!(want & side)) {
			continue;
		}
		for (i = 0; i < n; i++, k++) {
			sqlite3_value *v = 0;
			int rc = side == 1 ? sqlite3_preupdate_old(db, i, &v) : sqlite3_preupdate_new(db, i, &v);
			if (rc == 25) {
				// SQLITE_RANGE: a VIRTUAL generated column, which the
				// record does not hold (the image leaves it out).
				out[k].type = 0;
				continue;
			}
			if (rc != 0 || v == 0) {
				return -1;
			}
			out[k].type = sqlite3_value_type(v);
			switch (out[k].type) {
			case 1:
				out[k].i = sqlite3_value_int64(v);
				break;
			case 2:
				out[k].d = sqlite3_value_double(v);
				break;
			case 3:
				// text before bytes: the length is of the UTF-8 text.
				out[k].p = sqlite3_value_text(v);
				out[k].n = sqlite3_value_bytes(v);
				break;
			case 4:
				out[k].p = sqlite3_value_blob(v);
				out[k].n = sqlite3_value_bytes(v);
				break;
			}
		}
	}
	return n;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// captureSupported: this build registers SQLite's pre-update hook.
const captureSupported = true

// hookState is the hook's view of the writer connection.
type hookState struct {
	db    *C.sqlite3
	cells []C.skiff_cell
}

// registerCapture registers the pre-update hook on wc, a new writer
// connection, when capture is on; with it off nothing is registered and the
// apply path costs what it did.
func (s *StateMachine) registerCapture(wc *sqlite3.SQLiteConn) error {
	c := s.cap
	if c == nil {
		return nil
	}
	db, err := connHandle(wc)
	if err != nil {
		return err
	}
	c.db = db
	clear(c.names) // a new connection: maybe a new database
	wc.RegisterPreUpdateHook(func(d sqlite3.SQLitePreUpdateData) {
		if s.authz.user {
			c.preUpdate(&d)
		}
	})
	return nil
}

// connHandle returns the sqlite3* of a go-sqlite3 connection, which keeps
// it unexported. TestCaptureConnHandle pins the field.
func connHandle(wc *sqlite3.SQLiteConn) (*C.sqlite3, error) {
	f := reflect.ValueOf(wc).Elem().FieldByName("db")
	if !f.IsValid() || f.Kind() != reflect.Pointer || f.IsNil() {
		return nil, fmt.Errorf("%w: capture: no sqlite3 handle in %T", ErrStorage, wc)
	}
	return (*C.sqlite3)(f.UnsafePointer()), nil
}

// changes is sqlite3_changes() of the writer: after a failed DML statement,
// 0 when SQLite undid it.
func (h *hookState) changes() int { return int(C.sqlite3_changes(h.db)) }

// keepTable reports whether changes of table are captured.
func (c *capture) keepTable(table string) bool {
	if hasPrefixFold(table, internalPrefix) || hasPrefixFold(table, "sqlite_") {
		return false
	}
	if c.cfg.TableFilter == nil {
		return true
	}
	k, ok := c.keep[table]
	if !ok {
		k = c.cfg.TableFilter.MatchString(table)
		c.keep[table] = k
	}
	return k
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

var errPreUpdateRead = errors.New("pre-update hook: cannot read the row")

// preUpdate records one row change of a client statement.
func (c *capture) preUpdate(d *sqlite3.SQLitePreUpdateData) {
	if d.DatabaseName != "main" || !c.keepTable(d.TableName) {
		return
	}
	ev := ChangeEvent{Table: d.TableName}
	want := 0
	switch d.Op {
	case sqlite3.SQLITE_INSERT:
		ev.Op, ev.NewRowID, want = ChangeInsert, d.NewRowID, 2
	case sqlite3.SQLITE_UPDATE:
		ev.Op, ev.OldRowID, ev.NewRowID, want = ChangeUpdate, d.OldRowID, d.NewRowID, 3
	case sqlite3.SQLITE_DELETE:
		ev.Op, ev.OldRowID, want = ChangeDelete, d.OldRowID, 1
	default:
		return
	}
	if !c.cfg.RowIDsOnly {
		before, after, err := c.readRow(want)
		if err != nil {
			if c.err == nil {
				c.err = fmt.Errorf("%s of %q: %w", ev.Op, ev.Table, err)
			}
			return
		}
		ev.Before, ev.After = before, after
	}
	c.events = append(c.events, ev)
}

// readRow copies the row images out of SQLite (which owns their memory).
func (c *capture) readRow(want int) (before, after []Column, err error) {
	var n, need int
	for {
		var p *C.skiff_cell
		if len(c.cells) > 0 {
			p = &c.cells[0]
		}
		n = int(C.skiff_row(c.db, C.int(want), p, C.int(len(c.cells))))
		if n < 0 {
			return nil, nil, errPreUpdateRead
		}
		need = n
		if want == 3 {
			need *= 2
		}
		if need <= len(c.cells) {
			break
		}
		c.cells = make([]C.skiff_cell, need)
	}
	cells := c.cells[:need]
	// Cells hold C pointers only until this returns: cleared, so that no
	// stale one outlives the row.
	defer clear(cells)
	// One allocation for both images of an UPDATE.
	all := toColumns(cells)
	if want&1 != 0 {
		before, all = all[:n:n], all[n:]
	}
	if want&2 != 0 {
		after = all[:n:n]
	}
	return before, after, nil
}

func toColumns(cells []C.skiff_cell) []Column {
	cols := make([]Column, len(cells))
	for i := range cells {
		x := &cells[i]
		switch x._type {
		case 1:
			cols[i].Value = int64(x.i)
		case 2:
			cols[i].Value = float64(x.d)
		case 3:
			cols[i].Value = C.GoStringN((*C.char)(x.p), x.n)
		case 4:
			cols[i].Value = C.GoBytes(x.p, x.n)
		}
	}
	return cols
}
