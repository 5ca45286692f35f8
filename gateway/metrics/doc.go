// Package metrics serves Skiff's Prometheus metrics (/metrics) from its own
// registry (never the default one), with the Go and process collectors.
//
// Most figures are read at scrape time from the same published state that
// /status and /debug/vars read: the lifecycle State snapshot (phase,
// progress, the replica's sampled Raft and SQLite numbers), the queue's
// stats, the CDC and ingest sections and the SQLite files' sizes. A
// scrape therefore answers in every lifecycle phase and never touches
// Raft (DESIGN.md). Only what exists at event time is instrumented where it
// happens, once per request or batch: HTTP requests (route, code,
// latency), write proposals, ReadIndex rounds and applied batches.
package metrics
