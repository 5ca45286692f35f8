// Package cdc is change data capture out (rqlite's CDC, API.md 1.14): the
// state machine captures the rows each applied entry changed (sm.ChangeSink,
// on every voter, inside apply), the Outbox makes them durable in Pebble
// before SQLite commits them, and the Service - an actor running on every
// node, transmitting only while its node leads - delivers them in Raft index
// order to a webhook (rqlite's JSON envelope), to stdout, or to a NATS
// JetStream subject (one message per index, Nats-Msg-Id <id>-<index>).
//
// Delivery is at least once, in index order, and never skips: where rqlite
// drops a batch after transmit_max_retries, Skiff keeps retrying at the
// maximum backoff, counting failures. The acknowledged index goes through
// Raft as a high-water mark (HighWaterProposer) every
// high_watermark_interval; each node's Outbox prunes below it, and a new
// leader resumes after it. Duplicates happen only around a leadership change
// or a restart (groups acknowledged after the last high-water mark).
//
// A node that installs a Raft snapshot never captures the entries it
// covers: the Outbox records that missing range durably (missing.go), the
// Service fetches it from another voter's PeerHandler (peer.go, on the Raft
// port, backfill.go) on every node, and the leader never transmits into it.
// Only when every voter refuses it for backfill_timeout is it skipped and
// counted as a gap.
//
// All groups of one Raft index travel in one payload entry (a coalesced
// BATCH entry's requests, in request order): a consumer that deduplicates
// by index must never see an index twice in one delivery.
package cdc
