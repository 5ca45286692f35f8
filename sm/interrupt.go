package sm

/*
struct sqlite3;
extern void sqlite3_interrupt(struct sqlite3*);
static void skiff_interrupt(void *db) { sqlite3_interrupt((struct sqlite3*)db); }
*/
import "C"

import (
	"context"
	"reflect"
	"unsafe"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// interruptible runs f, a read stepping statements of c with no context
// of their own, and interrupts c if ctx ends first.
//
// mattn honours a context by stepping every row on a new goroutine and
// waiting on both: two goroutines and their stack growth per request, a
// cost a point read notices. Here one callback is armed per statement
// instead, and it waits for nothing.
//
// sqlite3_interrupt is safe from any thread while c is open (it is: the
// caller holds c until f returns, and waits below for the callback). An
// interrupt that lands after the statement ended is a no-op, or is cleared
// when the connection's next statement starts (sqlite3_step resets it
// when no other statement is running).
func interruptible[T any](ctx context.Context, c *sqlite3.SQLiteConn, f func() (T, error)) (T, error) {
	if ctx.Done() == nil {
		return f()
	}
	if err := ctx.Err(); err != nil {
		var zero T
		return zero, err
	}
	done := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(done)
		interruptConn(c)
	})
	v, err := f()
	if !stop() {
		<-done // the callback started: wait until it is done with c
	}
	return v, err
}

// interruptConn calls sqlite3_interrupt on c's handle. mattn keeps the
// handle in an unexported field and exports no interrupt of its own;
// TestInterruptConn pins the field, and the symbol is SQLite's own, linked
// into this binary by mattn's amalgamation.
func interruptConn(c *sqlite3.SQLiteConn) {
	f, ok := reflect.TypeFor[sqlite3.SQLiteConn]().FieldByName("db")
	if !ok || f.Type.Kind() != reflect.Pointer {
		return
	}
	db := *(*unsafe.Pointer)(unsafe.Add(unsafe.Pointer(c), f.Offset))
	if db != nil {
		C.skiff_interrupt(db)
	}
}
