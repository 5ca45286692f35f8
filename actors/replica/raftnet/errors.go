package raftnet

import "errors"

var (
	// ErrInvalidConfig: the transport cannot start with this configuration.
	ErrInvalidConfig = errors.New("raftnet: invalid config")
	// ErrBadFrame: a peer sent bytes that are not a valid frame; the
	// connection is dropped (the peer reconnects).
	ErrBadFrame = errors.New("raftnet: bad frame")
	// ErrBadSender: a message batch's source address is not host:port, or
	// is not the address Dragonboat holds for the sender it names; the
	// connection is dropped and nothing of the batch is delivered.
	ErrBadSender = errors.New("raftnet: bad sender address")
	// errPoison: the peer ended a snapshot stream.
	errPoison = errors.New("raftnet: poison received")
	// errIdle: no frame began within the idle read timeout.
	errIdle = errors.New("raftnet: idle")
)
