package replica

import "errors"

// Sentinel errors of package replica; the gateway maps each to an HTTP
// status in its one error table.
var (
	// ErrNotStarted: the NodeHost does not exist yet (or any more).
	ErrNotStarted = errors.New("node is starting")
	// ErrNotReady: the replica is not initialised, or dropped the request.
	ErrNotReady = errors.New("node is not ready")
	// ErrNoLeader: no leader is known.
	ErrNoLeader = errors.New("leader not found")
	// ErrTimeout: the request's deadline passed first. A write may still
	// have been applied (and a retry with the same ID applies once).
	ErrTimeout = errors.New("request timed out")
	// ErrBusy: Raft's queues are full; back off and retry.
	ErrBusy = errors.New("system busy")
	// ErrTooLarge: the request exceeds the largest Raft entry.
	ErrTooLarge = errors.New("request too large")
	// ErrStopped: the replica is shutting down.
	ErrStopped = errors.New("replica stopped")
	// ErrStaleRead: a level-none read's freshness bound was not met; rqlite
	// answers it as a request-level error (API.md 1.4).
	ErrStaleRead = errors.New("stale read")
	// ErrNotSingleNode: /boot on a node that is not alone in its cluster.
	ErrNotSingleNode = errors.New("not single-node")
	// ErrNothingToSnapshot: no entry was applied since the last snapshot.
	ErrNothingToSnapshot = errors.New("nothing new to snapshot")
	// ErrBadLevel: unknown read consistency level.
	ErrBadLevel = errors.New("unknown read consistency level")
	// ErrInvalidConfig is returned by Config.Validate.
	ErrInvalidConfig = errors.New("invalid replica config")
	// ErrBadMember refuses a membership change that cannot be made.
	ErrBadMember = errors.New("membership change refused")
)
