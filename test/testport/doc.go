// Package testport picks loopback TCP addresses for tests that must name
// a node's address before the node binds it (a Raft address is advertised
// to peers, so ":0" will not do).
//
// A port from net.Listen("127.0.0.1:0") lies in the kernel's ephemeral
// range, and once the picking listener closes, any outgoing connection on
// the machine may be given it before the node binds: with go test running
// packages side by side, one of them full of clusters, that happened
// (bootstrap's TestStartupFailureBeforeReplicaShutsDownCleanly, "address
// already in use"). Ports here come from below that range, which outgoing
// connections never take; each process draws its own random sequence and
// never hands out a port twice.
package testport
