package sm

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"

	"github.com/skiffdb/skiff/sm/cmdpb"
)

// ErrTextWriteViaQuery is the per-statement error text rqlite returns for a
// write sent as a read (API.md 1.6). The gateway matches it to send a
// /db/request holding writes through the log.
const ErrTextWriteViaQuery = "attempt to change database via query operation"

// args converts protobuf parameters into driver arguments. mattn binds a
// named argument to ":name", "@name" or "$name", whichever the SQL uses.
func args(ps []*cmdpb.Parameter) []driver.NamedValue {
	if len(ps) == 0 {
		return nil
	}
	out := make([]driver.NamedValue, len(ps))
	for i, p := range ps {
		out[i] = driver.NamedValue{Name: p.GetName(), Ordinal: i + 1}
		switch v := p.GetValue().(type) {
		case *cmdpb.Parameter_I:
			out[i].Value = v.I
		case *cmdpb.Parameter_D:
			out[i].Value = v.D
		case *cmdpb.Parameter_B:
			out[i].Value = v.B
		case *cmdpb.Parameter_Y:
			out[i].Value = v.Y
		case *cmdpb.Parameter_S:
			out[i].Value = v.S
		}
	}
	return out
}

// setValue converts a value scanned by mattn (which already applies the
// DATETIME and BOOLEAN conversions of API.md 1.5) into dst's oneof; NULL
// leaves it unset.
func setValue(dst *cmdpb.Value, v driver.Value) {
	switch x := v.(type) {
	case int64:
		dst.V = &cmdpb.Value_I{I: x}
	case float64:
		dst.V = &cmdpb.Value_D{D: x}
	case string:
		dst.V = &cmdpb.Value_S{S: x}
	case []byte:
		dst.V = &cmdpb.Value_Y{Y: x}
	case bool:
		dst.V = &cmdpb.Value_B{B: x}
	case time.Time:
		dst.V = &cmdpb.Value_T{T: x.UTC().Format(time.RFC3339Nano)}
	}
}

// lowerType lower-cases a declared type as rqlite reports it, without an
// allocation for the common names written in capitals.
func lowerType(decl string) string {
	switch decl {
	case "INTEGER":
		return "integer"
	case "INT":
		return "int"
	case "TEXT":
		return "text"
	case "REAL":
		return "real"
	case "BLOB":
		return "blob"
	case "NUMERIC":
		return "numeric"
	case "BOOLEAN":
		return "boolean"
	case "DATETIME":
		return "datetime"
	case "TIMESTAMP":
		return "timestamp"
	case "DATE":
		return "date"
	}
	return strings.ToLower(decl)
}

// stmtMode says how one statement may run.
type stmtMode int

const (
	// modeWrite runs a statement on the writer; ReturnsRows picks the shape.
	modeWrite stmtMode = iota
	// modeRead refuses statements that would change the database.
	modeRead
)

// runStatement executes one client statement on c and returns its result.
// err is non-nil only for storage faults or a cancelled ctx; SQL errors are
// in the result.
func runStatement(ctx context.Context, c *sqlite3.SQLiteConn, st *cmdpb.Statement, mode stmtMode, qualifyCols bool) (*cmdpb.StatementResult, error) {
	sqlText := st.GetSql()
	a := args(st.GetParameters())
	if mode == modeRead {
		return runRead(ctx, c, nil, sqlText, a, qualifyCols)
	}
	if st.GetReturnsRows() {
		res, handled, err := runQuery(ctx, c, sqlText, a)
		if handled || err != nil {
			return res, err
		}
	}
	r, err := c.ExecContext(ctx, sqlText, a)
	if err != nil {
		return sqlError(err)
	}
	id, _ := r.LastInsertId()
	n, _ := r.RowsAffected()
	return &cmdpb.StatementResult{LastInsertId: id, RowsAffected: n}, nil
}

// sqlError turns an execution error into a per-statement result, or passes
// a storage fault on.
func sqlError(err error) (*cmdpb.StatementResult, error) {
	if isStorageFault(err) {
		return nil, err
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return &cmdpb.StatementResult{Error: "query timeout"}, nil
	}
	return &cmdpb.StatementResult{Error: err.Error()}, nil
}

// stmtTail is the SQL after the first statement SQLite compiled from a
// string, trimmed. mattn keeps it unexported; TestStmtTail pins the field.
func stmtTail(st *sqlite3.SQLiteStmt) string {
	return reflect.ValueOf(st).Elem().FieldByName("t").String()
}

// hasNamed reports whether any argument is named. mattn rebinds only the
// arguments given, so a cached statement would keep a named parameter that
// a request left out at the previous request's value, where a fresh
// prepare has NULL; positional arguments rebind every slot. Requests with
// named arguments therefore never use a cached statement.
func hasNamed(a []driver.NamedValue) bool {
	for _, x := range a {
		if x.Name != "" {
			return true
		}
	}
	return false
}

// isEmptyStmt reports whether st compiled to no statement (a comment).
func isEmptyStmt(st *sqlite3.SQLiteStmt) bool {
	return reflect.ValueOf(st).Elem().FieldByName("s").IsNil()
}

// onlyComments reports whether sqlText compiles to no statement at all.
func onlyComments(ctx context.Context, c *sqlite3.SQLiteConn, sqlText string) bool {
	ds, err := c.PrepareContext(ctx, sqlText)
	if err != nil {
		return false
	}
	st := ds.(*sqlite3.SQLiteStmt)
	defer st.Close()
	return stmtTail(st) == "" && isEmptyStmt(st)
}

// stmtArgs picks the arguments of one statement of a multi-statement
// string, as mattn's own Exec does: the next na positional ones, and every
// named one.
func stmtArgs(a []driver.NamedValue, start, na int) ([]driver.NamedValue, error) {
	if len(a)-start < na {
		return nil, fmt.Errorf("not enough args to execute query: want %d got %d", na, len(a)-start)
	}
	if start == 0 && na == len(a) && !hasNamed(a) {
		return a, nil // args numbered them 1..n already
	}
	out := append([]driver.NamedValue(nil), a[start:start+na]...)
	for i := range a {
		if (i < start || i >= start+na) && a[i].Name != "" {
			out = append(out, a[i])
		}
	}
	for i := range out {
		out[i].Ordinal = i + 1
	}
	return out, nil
}

// prepareLast prepares the last statement of sqlText. Each statement before
// it is handed to lead, with its text and arguments, and skipped; start is
// the index of the last statement's first positional argument.
func prepareLast(ctx context.Context, c *sqlite3.SQLiteConn, sqlText string, a []driver.NamedValue,
	lead func(st *sqlite3.SQLiteStmt, head string, args []driver.NamedValue) error) (st *sqlite3.SQLiteStmt, start int, err error) {
	for {
		ds, err := c.PrepareContext(ctx, sqlText)
		if err != nil {
			return nil, 0, err
		}
		st := ds.(*sqlite3.SQLiteStmt)
		tail := stmtTail(st)
		if tail == "" || onlyComments(ctx, c, tail) {
			return st, start, nil
		}
		na := st.NumInput()
		args, err := stmtArgs(a, start, na)
		if err == nil {
			err = lead(st, sqlText[:strings.LastIndex(sqlText, tail)], args)
		}
		_ = st.Close()
		if err != nil {
			return nil, 0, err
		}
		start += na
		sqlText = tail
	}
}

// runRead runs a statement that must not write: it is prepared first so
// SQLite itself says whether it is read-only. Of a string of several
// statements the last one's rows are returned, as rqlite does; every one
// must be a read. A single read-only statement is kept in cache (nil: no
// cache) and reused by the next read of the same text.
func runRead(ctx context.Context, c *sqlite3.SQLiteConn, cache *stmtCache, sqlText string, a []driver.NamedValue, qualifyCols bool) (*cmdpb.StatementResult, error) {
	if hasNamed(a) {
		cache = nil
	}
	if cs := cache.get(sqlText); cs != nil {
		args, err := stmtArgs(a, 0, cs.st.NumInput())
		if err != nil {
			return sqlError(err)
		}
		return queryRead(ctx, c, cs.st, args, qualifyCols)
	}
	errWrite := errors.New(ErrTextWriteViaQuery)
	lead := false
	stmt, start, err := prepareLast(ctx, c, sqlText, a, func(st *sqlite3.SQLiteStmt, _ string, _ []driver.NamedValue) error {
		lead = true
		if !st.Readonly() {
			return errWrite
		}
		return nil
	})
	if errors.Is(err, errWrite) {
		return &cmdpb.StatementResult{Error: ErrTextWriteViaQuery}, nil
	}
	if err != nil {
		return sqlError(err)
	}
	if !stmt.Readonly() {
		_ = stmt.Close()
		return &cmdpb.StatementResult{Error: ErrTextWriteViaQuery}, nil
	}
	if cache != nil && !lead && stmtTail(stmt) == "" {
		cache.put(sqlText, &cachedStmt{st: stmt})
	} else {
		defer stmt.Close()
	}
	args, err := stmtArgs(a, start, stmt.NumInput())
	if err != nil {
		return sqlError(err)
	}
	return queryRead(ctx, c, stmt, args, qualifyCols)
}

// queryRead steps a prepared read of c and collects its rows; the statement
// is reset (not finalized) when the rows are closed. ctx interrupts it
// (interruptible); mattn is given none. A pooled reader's reads pass a
// context that never ends: its watch interrupts them (readRequest).
func queryRead(ctx context.Context, c *sqlite3.SQLiteConn, stmt *sqlite3.SQLiteStmt, args []driver.NamedValue, qualifyCols bool) (*cmdpb.StatementResult, error) {
	rows, err := stmt.QueryContext(context.Background(), args)
	if err != nil {
		return sqlError(err)
	}
	res, err := interruptible(ctx, c, func() (*cmdpb.StatementResult, error) {
		return collect(ctx, rows.(*sqlite3.SQLiteRows))
	})
	if err == nil && qualifyCols && res.GetError() == "" {
		res.Columns = qualify(stmt, res.Columns)
	}
	return res, err
}

// runQuery runs a write for its rows (RETURNING, or a write string ending in
// a SELECT). The statements before the last one are executed in order;
// the last one's rows are the result. handled is false when the string is a
// single statement that turned out to return no columns (then the caller
// runs it as a plain write).
func runQuery(ctx context.Context, c *sqlite3.SQLiteConn, sqlText string, a []driver.NamedValue) (*cmdpb.StatementResult, bool, error) {
	ranLead := false
	stmt, start, err := prepareLast(ctx, c, sqlText, a, func(_ *sqlite3.SQLiteStmt, head string, args []driver.NamedValue) error {
		ranLead = true
		_, err := c.ExecContext(ctx, head, args)
		return err
	})
	if err != nil {
		res, err := sqlError(err)
		return res, true, err
	}
	defer stmt.Close()
	args, err := stmtArgs(a, start, stmt.NumInput())
	if err != nil {
		res, err := sqlError(err)
		return res, true, err
	}
	rows, err := stmt.QueryContext(ctx, args)
	if err != nil {
		res, err := sqlError(err)
		return res, true, err
	}
	sr := rows.(*sqlite3.SQLiteRows)
	if len(sr.Columns()) == 0 {
		// Not stepped yet, so closing it runs nothing.
		_ = sr.Close()
		if !ranLead {
			return nil, false, nil
		}
		r, err := stmt.ExecContext(ctx, args)
		if err != nil {
			res, err := sqlError(err)
			return res, true, err
		}
		id, _ := r.LastInsertId()
		n, _ := r.RowsAffected()
		return &cmdpb.StatementResult{LastInsertId: id, RowsAffected: n}, true, nil
	}
	res, err := collect(context.Background(), sr)
	return res, true, err
}

// collect reads every row. A statement with no result columns is never
// stepped through Next (mattn would report a row of nils for a statement
// that compiled to nothing, such as a lone comment). A step failing once
// ctx has ended was interrupted for it, and fails as ctx's error.
func collect(ctx context.Context, rows *sqlite3.SQLiteRows) (*cmdpb.StatementResult, error) {
	defer rows.Close()
	cols := rows.Columns()
	res := &cmdpb.StatementResult{IsQuery: true, Columns: cols}
	decl := rows.DeclTypes()
	res.Types = make([]string, len(cols))
	for i := range cols {
		if i < len(decl) {
			res.Types[i] = lowerType(decl[i])
		}
	}
	if len(cols) == 0 {
		return res, nil
	}
	dest := make([]driver.Value, len(cols))
	for {
		for i := range dest {
			dest[i] = nil
		}
		err := rows.Next(dest)
		if errors.Is(err, io.EOF) {
			return res, nil
		}
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				err = cerr
			}
			r, ferr := sqlError(err)
			if ferr != nil {
				return nil, ferr
			}
			// rqlite reports a failed query with its error only.
			return &cmdpb.StatementResult{IsQuery: true, Error: r.GetError()}, nil
		}
		// One allocation for the row's values, not one per value.
		vals := make([]cmdpb.Value, len(cols))
		row := &cmdpb.Row{Values: make([]*cmdpb.Value, len(cols))}
		for i, v := range dest {
			setValue(&vals[i], v)
			row.Values[i] = &vals[i]
		}
		res.Rows = append(res.Rows, row)
	}
}

// timed runs f and, when on, records its duration in the result.
func timed(on bool, f func() (*cmdpb.StatementResult, error)) (*cmdpb.StatementResult, error) {
	if !on {
		return f()
	}
	t0 := time.Now()
	res, err := f()
	if res != nil {
		res.Time = time.Since(t0).Seconds()
	}
	return res, err
}
