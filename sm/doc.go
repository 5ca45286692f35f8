// Package sm is Skiff's Raft state machine: a Dragonboat
// statemachine.IOnDiskStateMachine that applies SQL to one SQLite file.
//
// The rules it follows come from DESIGN.md "The state machine" and
// DRAGONBOAT.md; the ones that crash or lose data when broken are:
//
//   - the applied index is written in the same SQLite transaction as the
//     batch it covers, and Open returns it, so a restart never re-applies or
//     skips an entry and opens in constant time whatever the file's size;
//   - Sync is a real fsync barrier, because Dragonboat compacts the Raft log
//     right after it;
//   - a SQL error is a per-statement result, never a Go error (a Go error
//     from Update panics the process by Dragonboat's design); only storage
//     faults (I/O error, disk full, corruption) are returned as errors;
//   - Lookup runs without any lock taken by Dragonboat, concurrently with
//     RecoverFromSnapshot and even after Close, so every handle it touches is
//     guarded here and a closed machine answers ErrClosed.
//
// With Config.Capture set, the machine also captures every row a client
// statement changes (SQLite's pre-update hook, build tag
// sqlite_preupdate_hook) and hands the changes of each transaction to a
// ChangeSink right before the transaction commits, grouped per client
// request and keyed by Raft index (capture.go).
//
// The apply path is split by job: apply.go applies Dragonboat's entries
// (the batch transaction, its redo after a client rollback, each entry
// kind), request.go runs one client request on the writer, authorizer.go
// holds the authorizer and what it records of the statement being
// prepared, writer.go the writer connection and its bookkeeping statements.
// Lookup's reads are in reader.go and exec.go, snapshots in snapshot.go.
//
// Commands and results are the protobuf messages of package cmdpb.
package sm
