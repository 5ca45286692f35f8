// Command skiffd is the Skiff daemon: `skiffd [flags] DATADIR`, with
// rqlited's flag syntax (API.md 5). rqlited flags Skiff does not implement
// yet are accepted with a warning when ignoring them is harmless (tuning,
// backups), and refused when ignoring them would mislead the operator about
// safety: a node told to -join that bootstrapped alone, or told to use TLS
// that served in clear, would be worse than one that does not start.
package main
