// Package clientcfg is the client side of the skiff CLI's TLS flags (the
// CA to trust, -insecure, a client certificate for mutual TLS), shared by
// `skiff shell`, `skiff status` and `skiff bench` so that the three load
// and check them alike.
//
// It is its own small package rather than actors/cdc's
// TLSConfig.ClientConfig, which does the same loading: importing actors/cdc
// would pull the state machine (cgo SQLite) and the NATS client into the
// command-line client, and its errors name JSON keys, not flags.
//
// Proxies: Transport honours HTTP_PROXY, HTTPS_PROXY and NO_PROXY, as
// the shell always did; the status view now does too. `skiff bench` takes
// only TLS: its workers dial the targets directly, since a proxy in the
// path would be part of what it measures.
package clientcfg
