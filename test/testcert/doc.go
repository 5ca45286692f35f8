// Package testcert writes a self-signed certificate for tests that need
// TLS files: the CDC and ingest configuration tests and the ingest TLS
// connection test.
package testcert
