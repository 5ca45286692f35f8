// Package benchkit holds what the benchmark and soak drivers under test/
// (benchcluster, benchcdc, soak; the failover nemesis takes FreeAddr)
// share: starting and stopping skiffd processes for a loopback cluster,
// waiting for a node to be ready, finding the leader, reading an answer's
// body, reading a process's CPU time and resident set from /proc, taking a
// node's CPU profile, the median of a workload's runs, and the flags and
// work directory the rounds-based drivers (benchsec, benchmetrics,
// benchcdc) take.
//
// It is tooling for programs run by hand or by make targets, not a
// library: errors are returned as they come, with the node's log named
// where it helps.
package benchkit
