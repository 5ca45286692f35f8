// Package replica is the actor that alone holds Dragonboat's NodeHost. It
// starts the replica (new or restart), turns typed execute and query
// requests into proposals and reads at the requested consistency level, and
// tells lifecycle what Raft is doing through listener adapters that only
// ever do non-blocking sends (DRAGONBOAT.md 0.8).
//
// Blocking Dragonboat calls never run in the actor's select loop. The data
// requests (Execute, Query) run on their caller's goroutine under a lease
// of the NodeHost that shutdown waits out (hotpath.go); concurrent writes
// are coalesced into shared log entries by a proposer (coalesce.go)
// and linearizable reads share ReadIndex rounds (readindex.go). Every other
// request goes through an inbox and is served on a goroutine of its own
// that answers on the request's reply channel. A request that arrives
// before the NodeHost exists is refused at once.
package replica
