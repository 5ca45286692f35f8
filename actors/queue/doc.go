// Package queue is the queued-writes actor (rqlite's ?queue, API.md 1.9).
// A queued write is acknowledged at once with a sequence number and
// applied later, batched with other queued writes into one Raft proposal;
// ?wait blocks until the queue has been flushed past that number.
//
// A batch that fails to reach the log (no leader, timeout) is retried every
// RetryInterval until it succeeds or the node stops, as rqlite does; SQL
// errors inside a batch are results, not failures, so they are not retried
// (a client that queued invalid SQL got its 200 already, API.md 1.9).
// Every attempt at a batch carries the request ID chosen when the batch
// was formed (actors.WithRequestID), so an attempt that timed out after
// committing is not applied a second time by its retry.
//
// Shutdown drains: the batch in flight is not cancelled with the actor,
// and what is still queued is written after it, within ShutdownGrace;
// whatever is left then is logged as dropped, with a count.
package queue
