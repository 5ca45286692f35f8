package backup

import "errors"

// Sentinel errors.
var (
	// ErrInvalidConfig marks an unusable -auto-backup or -auto-restore file.
	ErrInvalidConfig = errors.New("invalid auto-backup/restore configuration")
	// ErrUnsupportedType marks a storage type Skiff does not implement
	// (gcs) or does not know.
	ErrUnsupportedType = errors.New("unsupported storage type")
	// ErrNotFound is returned when the storage holds no backup object.
	ErrNotFound = errors.New("backup object not found")
	// ErrInvalidBackup marks a downloaded object that is not a sound
	// SQLite database (after gunzip, when it was gzip).
	ErrInvalidBackup = errors.New("backup is not a valid SQLite database")
	// ErrStorage wraps a failure talking to the storage.
	ErrStorage = errors.New("backup storage failed")
)
