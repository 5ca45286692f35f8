// Package tlsreload serves a TLS certificate and key from files and reloads
// them when the files change, so that an operator can rotate the HTTP API's
// certificate without restarting the node (rqlite watches its cert and key
// files the same way, API.md 1.13). Connections already established keep
// the certificate they negotiated; new handshakes get the current pair. A
// new pair that fails to load is logged and the previous one kept, so a
// half-written rotation never takes HTTPS down.
package tlsreload
