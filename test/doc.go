// Package test holds Skiff's end-to-end tests. They build cmd/skiffd once
// (with the race detector), start it as a real process on loopback ports
// with its data in a temporary directory, and talk to it only over HTTP, the
// way rqlite clients do: every expectation is about bytes on the wire, exit
// codes and what survives a restart, never about internals.
//
// The HTTP contract the tests hold the daemon to is /work/shared/API.md; test
// comments cite its sections ("API.md 1.4"). Lifecycle expectations come from
// DESIGN.md "Lifecycle states".
//
// Run with: go test -race ./test/
package test
