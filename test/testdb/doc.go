// Package testdb writes the small SQLite databases that backup and restore
// tests plant as backups: table t (id INTEGER PRIMARY KEY, v TEXT) holding
// given rows (Create, File), and their gzip (Gzip), as -auto-backup
// uploads them.
package testdb
