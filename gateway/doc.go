// Package gateway is the HTTP gateway actor: it parses rqlite's HTTP API
// (API.md) into typed requests, asks the replica actor for data and the
// lifecycle actor's published State for status, and writes rqlite's JSON.
//
// Status endpoints (/status, /readyz, /nodes, /leader) are answered from
// lifecycle state only: no handler can reach Raft, so no request can crash
// or hang a node whatever phase it is in (DESIGN.md, rqlite#1698). Every
// error becomes an HTTP status through one table (errors.go), and a panic
// in a handler is recovered into a 500 with its stack logged.
//
// With Config.Auth set (-auth), every route checks its API.md 1.1
// permission before routing (authz.go), so no handler runs for a client
// that may not use it; peer routes on the Raft port are not checked.
package gateway
