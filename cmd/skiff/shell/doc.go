// Package shell is `skiff shell`: an interactive SQL shell for any
// rqlite-compatible node, after rqlite's own CLI (cmd/rqlite): the same
// flags, dot commands, HTTP calls and messages (API.md 4.2).
//
// The package has a synchronous core that is tested without a terminal:
// Splitter turns input lines into statements and dot commands (SQL runs
// once a `;` ends it, as in sqlite3, so a statement may span lines),
// WriteTable prints results in sqlite3's `.mode table` layout, and
// Shell.Exec runs one input against the node and prints its outcome. Run
// is the interactive loop around them: a line editor with history
// (github.com/chzyer/readline, history in ~/.skiff_history) when stdin is
// a terminal, plain line reading when it is not.
package shell
