// Package raftnet is the Raft transport Skiff gives Dragonboat
// (NodeHostConfig.Expert.TransportFactory).
//
// It speaks Dragonboat's own TCP wire format (magic 0xAE 0x7D, an 18-byte
// header with its CRC32, the payload and its CRC32; a zero magic is the
// snapshot stream's poison), from Dragonboat's internal/transport/tcp.go
// (Apache-2.0, Lei Ni and contributors), so nodes built with either
// transport talk to each other. Two things differ, and they are why it
// exists:
//
//   - Inbound connections come from Skiff's Raft-port mux (Inbound.Serve)
//     on the goroutine that accepted them, instead of through a private
//     loopback listener the mux had to copy every byte into: that hop cost
//     every Raft message two more syscalls and a goroutine wake-up on the
//     receiving node, twice per commit round trip.
//   - A frame is written with one write(2) and read through a buffer.
//     Dragonboat's writes magic, header and payload separately and reads
//     them with three reads.
//
// Without an Inbound it listens on NodeHostConfig.ListenAddress itself
// (in-process tests). Node-to-node TLS (Skiff's -node-* flags) is
// Config.TLS, used for every dial, and Config.ServerTLS when listening
// itself; behind the mux, the mux does the server's handshake. Dragonboat's
// own MutualTLS settings are refused.
package raftnet
