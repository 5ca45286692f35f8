// Command skiff is Skiff's command-line client: `skiff bench` drives any
// rqlite-compatible HTTP endpoint with a workload and reports throughput
// and latency percentiles (see package bench).
package main
