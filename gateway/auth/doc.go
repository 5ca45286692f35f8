// Package auth is the credential store behind rqlited's -auth flag
// (API.md 1.12): a JSON file of users, plaintext passwords and permissions,
// checked with rqlite's algorithm on every HTTP API request.
//
// The parsed credentials sit behind an atomic pointer so that a reload
// (SIGHUP, or the file changing on disk) swaps them without a lock on the
// request path; a file that fails to parse leaves the old credentials in
// place, so a bad edit never opens or closes the node by accident.
package auth
