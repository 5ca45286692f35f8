// Package backup is Skiff's automatic backups and restores, configured by
// rqlite's -auto-backup and -auto-restore JSON files unchanged (rqlite's
// auto/backup, auto/restore, auto/aws and auto/file).
//
// The Uploader runs on every node but works only while its node leads:
// every interval it takes a binary backup through the replica (the same
// pinned-state copy as /db/backup, made off the apply path, so writes are
// never blocked), gzips it unless no_compress, stages it in a temporary
// file under the data directory and uploads it with a known size (S3
// multipart with bounded memory). An upload is skipped when nothing was
// applied since the last one (num_uploads_skipped), and when the content
// sum equals the one kept in the stored object's metadata
// (num_uploads_skipped_id), so a new leader does not upload an unchanged
// database again.
//
// Restore downloads the object, gunzips it when it is gzip, and checks it
// is a sound SQLite file, all in temporary files that a failure removes;
// the node then boots from it as /boot does.
package backup
