// Package testcert writes certificates for tests that need TLS files, made
// with crypto/x509 so that no private key is ever checked in: a
// self-signed certificate (Write: the CDC and ingest configuration tests,
// HTTPS), and a test CA with leaf certificates of any common name, names
// and validity, or self-signed ones trusted by nobody (NewCA, CA.Issue,
// SelfSigned: node-to-node TLS). The node TLS end-to-end tests take the
// certificates a cluster must refuse from it too: the wrong server name
// (WrongName), the wrong common name, expired, client-only (ClientOnly);
// Reissue rotates a pair in place.
package testcert
