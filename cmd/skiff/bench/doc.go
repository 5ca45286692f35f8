// Package bench is the load generator behind `skiff bench`: it drives any
// rqlite-compatible HTTP endpoint (Skiff or rqlite, so comparisons are
// fair) with a chosen workload, closed loop (a fixed number of workers) or
// open loop (a constant arrival rate, latency measured from each request's
// intended send time so that stalls are not hidden), and reports
// throughput, errors by status and latency percentiles from HDR
// histograms. Targets may be https:// (the same keep-alive connections,
// with TLS) and every request may carry Basic credentials, so that the
// cost of HTTPS and of -auth is measured with the same client.
package bench
