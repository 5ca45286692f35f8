// Command skiff is Skiff's command-line client for any rqlite-compatible
// HTTP endpoint:
//
//   - `skiff shell`: an interactive SQL shell with rqlite's CLI flags and
//     dot commands, history and multi-line statements (package shell);
//   - `skiff status`: a live terminal view of every node's role, lifecycle
//     phase and recovery progress (package nodeview);
//   - `skiff bench`: a workload driver that reports throughput and latency
//     percentiles (package bench).
package main
