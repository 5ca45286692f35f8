// Package nodetls builds the TLS configurations that protect everything on
// a node's Raft port (rqlited's -node-cert, -node-key, -node-ca-cert,
// -node-no-verify, -node-verify-client, -node-verify-server-name and
// -node-verify-common-name, API.md 1.13): the server side the Raft-port
// mux wraps every accepted connection in, and the client side every dial
// to a peer uses (Raft transport, joins, node metadata, peers offers, CDC
// backfills, /nodes queries).
//
// The semantics are rqlite's (rtls/config.go, tcp/mux.go, cmd/rqlited):
// the node presents its certificate on both sides; as a client it checks
// the peer's certificate against the CA (the system roots without one) and
// the dialed host name, or -node-verify-server-name instead, unless
// -node-no-verify; as a server it asks for no client certificate unless
// -node-verify-client, which requires one signed by the CA and, with
// -node-verify-common-name, that common name. Skiff checks the common name
// and -node-verify-server-name on both sides (rqlite checks each on one):
// see Config.checkPeer. The certificate and key are
// reloaded when their files change; the CA is read once (a CA change
// needs a restart, as in rqlite). A nil *TLS is plaintext everywhere.
package nodetls
