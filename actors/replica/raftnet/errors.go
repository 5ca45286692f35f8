package raftnet

import "errors"

var (
	// ErrInvalidConfig: the transport cannot start with this configuration.
	ErrInvalidConfig = errors.New("raftnet: invalid config")
	// ErrBadFrame: a peer sent bytes that are not a valid frame; the
	// connection is dropped (the peer reconnects).
	ErrBadFrame = errors.New("raftnet: bad frame")
	// errPoison: the peer ended a snapshot stream.
	errPoison = errors.New("raftnet: poison received")
	// errIdle: no frame began within the idle read timeout.
	errIdle = errors.New("raftnet: idle")
)
