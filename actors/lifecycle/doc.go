// Package lifecycle is the actor that owns a node's state: starting,
// opening, joining, recovering, ready, degraded, stopping (DESIGN.md
// "Lifecycle states"). It learns from typed events sent without blocking by
// bootstrap, the state machine and Dragonboat's listeners (no event that
// changes state is ever lost; progress reports may be coalesced), and
// publishes each new State as an immutable value that any goroutine loads
// without a lock. Status endpoints read only that value, so no status
// request can reach Raft, whatever phase the node is in.
//
// The transitions live in Machine, a synchronous core that tests drive
// without goroutines; Lifecycle is the goroutine around it.
package lifecycle
