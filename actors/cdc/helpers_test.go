package cdc

import (
	"os"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/skiffdb/skiff/sm"
)

// waitTimeout bounds every poll-until-condition of these tests.
const waitTimeout = 20 * time.Second

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func openOutbox(t *testing.T, dir string) *Outbox {
	t.Helper()
	ob, err := OpenOutbox(dir, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ob.Close() })
	return ob
}

// insert is a one-row INSERT group at index i.
func insert(i uint64, req uint32, id int64, name string) sm.ChangeGroup {
	return sm.ChangeGroup{Index: i, Request: req, CommitTime: 1757892884812603 + int64(i), Events: []sm.ChangeEvent{{
		Op: sm.ChangeInsert, Table: "users", NewRowID: id,
		After: []sm.Column{{Name: "id", Value: id}, {Name: "name", Value: name}},
	}}}
}

// eventually polls cond until it holds or waitTimeout passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
