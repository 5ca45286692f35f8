package sm

import (
	"fmt"
	"strings"

	dbsm "github.com/lni/dragonboat/v4/statemachine"
	"google.golang.org/protobuf/proto"

	"github.com/skiffdb/skiff/sm/cmdpb"
)

// IsVacuum reports whether req is a plain VACUUM of the database: one
// statement, VACUUM or VACUUM main, no parameters. SQLite runs VACUUM only
// outside a transaction, so such a request is applied between two batch
// transactions (applyVacuum) and must be proposed in an entry of its own.
// VACUUM INTO (a file on every node's disk) is not one.
func IsVacuum(req *cmdpb.Request) bool {
	st := req.GetStatements()
	if len(st) != 1 || len(st[0].GetParameters()) > 0 {
		return false
	}
	// Every write asks (the replica, each entry's apply): a statement
	// that does not start with the word is turned away without
	// allocating.
	sql := strings.TrimSpace(st[0].GetSql())
	if len(sql) < len("vacuum") || !strings.EqualFold(sql[:len("vacuum")], "vacuum") {
		return false
	}
	f := strings.Fields(strings.ToLower(strings.TrimRight(sql, "; \t\r\n")))
	switch {
	case len(f) == 1:
		return f[0] == "vacuum"
	case len(f) == 2:
		return f[0] == "vacuum" && (f[1] == "main" || f[1] == `"main"`)
	}
	return false
}

// vacuumCommand reports whether an entry is a VACUUM request (IsVacuum)
// and gives its request ID.
func vacuumCommand(cmd *cmdpb.Command, decErr error) ([]byte, bool) {
	if decErr != nil || cmd.GetType() != cmdpb.Command_TYPE_EXECUTE || cmd.GetVersion() != CommandVersion || !IsVacuum(cmd.GetRequest()) {
		return nil, false
	}
	return cmd.GetRequestId(), true
}

// applyVacuum commits the batch so far (recording prev, the last entry
// applied, when there is one), runs VACUUM on the writer outside any
// transaction, and opens a new batch transaction. VACUUM changes no value
// a client stored, but may renumber the rowids of tables without an
// INTEGER PRIMARY KEY, the same way on every replica; run again after a
// crash before the next commit records index, it renumbers nothing more.
func (s *StateMachine) applyVacuum(id []byte, index, prev uint64) (dbsm.Result, error) {
	if len(id) > 0 {
		stored, ok, err := s.w.lookupDedup(id)
		if err != nil {
			return dbsm.Result{}, fmt.Errorf("look up request id: %w", err)
		}
		if ok {
			return dbsm.Result{Value: 1, Data: stored}, nil
		}
	}
	if err := s.commitThrough(prev); err != nil {
		return dbsm.Result{}, err
	}
	if err := execRaw(s.w.c, "VACUUM"); err != nil {
		// A storage fault, whatever SQLite says: VACUUM renumbers the
		// rowids of tables without an INTEGER PRIMARY KEY, so a replica
		// that could not (a full disk, its own) would disagree with the
		// others on them from here on. The node stops and applies the
		// entry again when restarted, as for any write that fails so.
		return dbsm.Result{}, fmt.Errorf("vacuum: %w", err)
	}
	res := &cmdpb.StatementResult{}
	if err := run(s.w.begin); err != nil {
		return dbsm.Result{}, fmt.Errorf("begin: %w", err)
	}
	resp := &cmdpb.Response{Results: []*cmdpb.StatementResult{res}, RaftIndex: index}
	data, err := proto.Marshal(resp)
	if err != nil {
		return dbsm.Result{}, fmt.Errorf("encode response: %w", err)
	}
	if len(id) > 0 {
		if err := s.remember(index, id, data); err != nil {
			return dbsm.Result{}, err
		}
	}
	return dbsm.Result{Value: 1, Data: data}, nil
}
