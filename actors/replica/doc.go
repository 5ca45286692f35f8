// Package replica is the actor that alone holds Dragonboat's NodeHost. It
// starts the replica (new or restart), turns typed execute and query
// requests into proposals and reads at the requested consistency level, and
// tells lifecycle what Raft is doing through listener adapters that only
// ever do non-blocking sends (DRAGONBOAT.md 0.8).
//
// Blocking Dragonboat calls never run in the actor's select loop: each
// request is served on a goroutine of its own that answers on the request's
// reply channel, so one slow proposal never delays another, and a request
// that arrives before the NodeHost exists is refused at once.
package replica
