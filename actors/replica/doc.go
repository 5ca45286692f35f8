// Package replica alone holds Dragonboat's NodeHost. It starts the replica
// (new or restart), turns typed execute and query requests into proposals
// and reads at the requested consistency level, and tells lifecycle what
// Raft is doing through listener adapters that only ever do non-blocking
// sends (DRAGONBOAT.md 0.8).
//
// A Replica is a handle (DESIGN.md "The actors"): every method runs on its
// caller's goroutine under a lease (hotpath.go) that is refused before Run
// has started the NodeHost and once shutdown begins, and that shutdown
// waits out. What needs ordering or owns state is an actor Run starts with
// the NodeHost (run.go): the proposer coalesces concurrent writes into
// shared log entries (coalesce.go), the read rounds share one ReadIndex
// among the linearizable reads waiting for it (readindex.go), and the
// membership actor runs changes one at a time (members.go; the join plan
// is a plain function, joinplan.go). Periodic jobs (jobs.go) are
// goroutines of their own, started and stopped with the NodeHost. Run's
// shutdown order is written in one place (stop, run.go).
package replica
