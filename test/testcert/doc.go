// Package testcert makes certificates for tests, with crypto/x509, so that
// no private key is ever checked in. Write makes one self-signed pair (the
// CDC, ingest and HTTPS tests); a CA issues node certificates for
// node-to-node TLS, and the ones a cluster must refuse: the wrong server
// name, the wrong common name, expired, client-only; SelfSigned makes one
// that no CA vouches for.
package testcert
