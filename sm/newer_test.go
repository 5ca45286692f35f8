package sm

import (
	"errors"
	"testing"

	dbsm "github.com/lni/dragonboat/v4/statemachine"

	"github.com/skiffdb/skiff/sm/cmdpb"
)

// An entry a newer build wrote (a later command version, or a command
// type this build does not know, alone or inside a BATCH) stops the
// apply with ErrNewerCommand, a storage fault, and commits nothing of its
// batch: skipping it, as an invalid command is skipped, would leave this
// node without what the upgraded nodes applied. Reopened, the node stands
// before the batch and replays it (then, once upgraded, applies it).
func TestNewerCommandHaltsApply(t *testing.T) {
	insert := func(v string) *cmdpb.Command {
		return &cmdpb.Command{Version: CommandVersion, Type: cmdpb.Command_TYPE_EXECUTE,
			Request: &cmdpb.Request{Statements: stmts("INSERT INTO t VALUES (" + v + ")")}}
	}
	for _, tc := range []struct {
		name  string
		newer *cmdpb.Command
	}{
		{"later version", &cmdpb.Command{Version: CommandVersion + 1, Type: cmdpb.Command_TYPE_EXECUTE,
			Request: &cmdpb.Request{Statements: stmts("INSERT INTO t VALUES (3)")}}},
		{"unknown type", &cmdpb.Command{Version: CommandVersion, Type: cmdpb.Command_Type(99)}},
		{"later version inside a batch", &cmdpb.Command{Version: CommandVersion, Type: cmdpb.Command_TYPE_BATCH,
			Batch: []*cmdpb.Command{insert("4"), {Version: CommandVersion + 1, Type: cmdpb.Command_TYPE_EXECUTE,
				Request: &cmdpb.Request{Statements: stmts("INSERT INTO t VALUES (5)")}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.apply(cmd("c", false, "CREATE TABLE t (v)"), mustMarshal(insert("1")))
			before := h.s.Applied()
			ents := []dbsm.Entry{{Index: h.next, Cmd: mustMarshal(insert("2"))}, {Index: h.next + 1, Cmd: mustMarshal(tc.newer)}}
			_, err := h.s.Update(ents)
			if !errors.Is(err, ErrNewerCommand) || !errors.Is(err, ErrStorage) {
				t.Fatalf("Update = %v, want ErrNewerCommand, a storage fault", err)
			}
			if err := h.s.Close(); err != nil {
				t.Fatal(err)
			}
			if idx := h.open(); idx != before {
				t.Fatalf("reopened at applied index %d, want %d (the batch before)", idx, before)
			}
			if n := h.count("t"); n != 1 {
				t.Fatalf("%d rows after the halted batch, want 1", n)
			}
		})
	}
}
