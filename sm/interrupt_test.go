package sm

import (
	"context"
	"testing"
	"time"

	"github.com/skiffdb/skiff/sm/cmdpb"
)

// TestInterruptConn pins what interruptConn reads out of mattn's
// connection: a pointer field named db.
func TestInterruptConn(t *testing.T) {
	h := &harness{t: t, dir: t.TempDir()}
	s, err := New(Config{Dir: h.dir, ReadConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(make(chan struct{})); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	h.s = s
	slow := "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT COUNT(*) FROM c"
	for _, tc := range []struct {
		name   string
		cancel func(context.CancelFunc)
	}{
		{"cancelled while running", func(cancel context.CancelFunc) { time.AfterFunc(50*time.Millisecond, cancel) }},
		{"cancelled before", func(cancel context.CancelFunc) { cancel() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			tc.cancel(cancel)
			start := time.Now()
			out, err := s.Lookup(&Query{Ctx: ctx, Request: &cmdpb.Request{Statements: stmts(slow)}})
			if err == nil {
				if got := out.(*cmdpb.Response).Results[0].GetError(); got != "query timeout" {
					t.Fatalf("slow read answered %v, want query timeout", out)
				}
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("slow read ran %v after cancel", d)
			}
			// The one connection reads again: no interrupt is left over.
			for i := 0; i < 20; i++ {
				if r := h.query("SELECT 1").Results[0]; r.GetError() != "" || r.Rows[0].Values[0].GetI() != 1 {
					t.Fatalf("read after interrupt: %v", r)
				}
			}
		})
	}
}
