// Package ingest is the actor that takes SQL commands in from NATS
// JetStream (-ingest-config): every node runs it, all sharing one durable
// pull consumer, so each message is fetched by one node at a time.
//
// A message's body is a /db/request body (API.md 1.3); its headers may
// carry that endpoint's query parameters (level, transaction, and the
// response variants), and Reply-To names a subject for the response. A
// message is handled exactly as the gateway handles POST /db/request: reads
// alone at a level other than strong are queries; anything with a write
// goes through the log, after the gateway's rewriting of non-deterministic
// SQL.
//
// Exactly-once effect. A write is proposed under a request ID derived from
// the stream and the message's Nats-Msg-Id (or, without one, its stream
// sequence), so a message delivered again, after a node crashed between
// commit and ack or after a timeout whose write did commit, is answered
// from the state machine's dedup record instead of applied twice. A message
// is acked only once its write committed, and its reply is published
// before the ack (a reply lost in a crash is sent on the redelivery). The
// dedup record lives for sm.DefaultDedupWindow (200,000) Raft entries: a
// redelivery must come within that many entries of the first apply. It
// comes within AckWait (default 10s: in-progress marks stop with the crash)
// or the redelivery backoff (at most 5s), so below about 20,000 entries a
// second; a single node applies about 5,000 ingest messages a second.
//
// Order. Messages are processed concurrently, on every node: two messages
// may apply in either order. Statements that must apply in order go in one
// message (one request, one Raft entry).
//
// Failures. A SQL error is a result: replied and acked. A write that failed
// without a result (no leader, timeout, node stopping) is nak'ed with a
// growing delay and delivered again, to this or another node, for as long
// as it takes: the consumer's MaxDeliver is unlimited on purpose, since
// JetStream silently drops a message past it. A message that can never
// apply (a body that does not parse, a request too large for a Raft entry)
// is nak'ed until its delivery count reaches MaxDeliveries (another node,
// perhaps running a newer version, gets a chance), then answered with the
// error, published to the dead-letter subject with headers saying why, and
// terminated; a poison message never holds up the others, which are
// processed concurrently.
//
// The service fetches nothing while the node does not serve data (starting,
// recovering, no leader), and reconnects to NATS forever without ever
// blocking the node or /status, which shows the connection and the last
// error.
package ingest
