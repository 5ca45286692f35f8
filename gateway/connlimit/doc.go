// Package connlimit caps the connections a listener accepts, in total and
// per remote IP, so that one host (or a flood from many) cannot exhaust the
// node's file descriptors and goroutines, and bounds how slowly an HTTP
// client may send a request body. Both the HTTP API port and the Raft
// port use it. A refused connection is closed at once (reset, not
// lingered on), counted by reason, and logged at most once per LogEvery
// with the number of refusals the log skipped.
package connlimit
