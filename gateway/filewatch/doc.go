// Package filewatch notices that files changed on disk by polling their
// size and modification time: what the credentials file (-auth) and the
// HTTPS certificate pair need to be reloaded without a restart, with no
// dependency on inotify (files on network mounts and replaced by rename
// are noticed alike).
package filewatch
