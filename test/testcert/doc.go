// Package testcert writes certificates for tests that need TLS files: a
// self-signed certificate (Write: the CDC and ingest configuration tests,
// HTTPS), and a test CA with leaf certificates of any common name, names
// and validity, or self-signed ones trusted by nobody (NewCA, CA.Issue,
// SelfSigned: node-to-node TLS).
package testcert
