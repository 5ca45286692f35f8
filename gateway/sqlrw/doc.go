// Package sqlrw rewrites the non-deterministic parts of a SQL statement into
// literals before it is proposed (API.md 1.15): RANDOM() and RANDOMBLOB(N)
// become values drawn once by the proposer, and time functions asked for
// 'now' get the proposer's clock as a Julian day number. Every replica then
// applies the same statement and computes the same result.
//
// It works on SQLite's tokens (string literals, quoted identifiers and
// comments are skipped whole) rather than on a parsed tree, and leaves every
// byte it does not rewrite as the client sent it.
package sqlrw
