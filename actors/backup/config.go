package backup

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
)

// ConfigVersion is the newest config file version understood (rqlite's
// auto.Version).
const ConfigVersion = 1

// DefaultRestoreTimeout bounds a restore's download when the file sets no
// timeout (rqlite's default).
const DefaultRestoreTimeout = 30 * time.Second

// StorageType names where backups go.
type StorageType string

// Storage types, as rqlite names them.
const (
	TypeS3   StorageType = "s3"
	TypeFile StorageType = "file"
	// TypeGCS is rqlite's Google Cloud Storage; Skiff refuses it at start.
	TypeGCS StorageType = "gcs"
)

// S3Config is the "sub" object of an s3 config (rqlite's aws.S3Config).
type S3Config struct {
	// Endpoint is host[:port] or a URL; empty means AWS S3. An http://
	// URL talks plain HTTP (a local S3-compatible server).
	Endpoint        string `json:"endpoint,omitempty"`
	Region          string `json:"region"`
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
	Bucket          string `json:"bucket"`
	// Path is the object key.
	Path           string `json:"path"`
	ForcePathStyle bool   `json:"force_path_style"`
}

// FileConfig is the "sub" object of a file config (rqlite's file.Config).
type FileConfig struct {
	Dir  string `json:"dir"`
	File string `json:"file"`
}

// Storage is the part of both configs that names the storage.
type Storage struct {
	Type StorageType
	// S3 is set for type s3, File for type file.
	S3   *S3Config
	File *FileConfig
}

// Config is an -auto-backup file (rqlite's backup.Config).
type Config struct {
	Version int
	Storage
	Interval   time.Duration
	Vacuum     bool
	NoCompress bool
	// Timestamp names each object with its upload time (rqlite's format,
	// see TimestampedPath) instead of overwriting one object.
	Timestamp bool
}

// RestoreConfig is an -auto-restore file (rqlite's restore.Config).
type RestoreConfig struct {
	Version int
	Storage
	// Timeout bounds the download.
	Timeout time.Duration
	// ContinueOnFailure starts the node without the data when the
	// download fails, as rqlite does (a downloaded file that is not a
	// database still fails the start: it would be lost data, silently).
	ContinueOnFailure bool
}

// fileConfig is the JSON shape common to both files.
type fileConfig struct {
	Version           int             `json:"version"`
	Type              StorageType     `json:"type"`
	NoCompress        bool            `json:"no_compress"`
	Timestamp         bool            `json:"timestamp"`
	Vacuum            bool            `json:"vacuum"`
	Interval          json.RawMessage `json:"interval"`
	Timeout           json.RawMessage `json:"timeout"`
	ContinueOnFailure bool            `json:"continue_on_failure"`
	Sub               json.RawMessage `json:"sub"`
}

// ParseBackupConfig reads an -auto-backup argument: the path of a JSON
// file or, when it starts with '{', the JSON itself. $VAR and ${VAR} are
// expanded from the environment before parsing, as rqlite does. The
// result is valid.
func ParseBackupConfig(pathOrJSON string) (Config, error) {
	fc, st, err := parse(pathOrJSON)
	if err != nil {
		return Config{}, err
	}
	c := Config{Version: fc.Version, Storage: st, Vacuum: fc.Vacuum, NoCompress: fc.NoCompress, Timestamp: fc.Timestamp}
	if c.Interval, err = parseDuration("interval", fc.Interval); err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// ParseRestoreConfig reads an -auto-restore argument as ParseBackupConfig
// does. A missing timeout is DefaultRestoreTimeout.
func ParseRestoreConfig(pathOrJSON string) (RestoreConfig, error) {
	fc, st, err := parse(pathOrJSON)
	if err != nil {
		return RestoreConfig{}, err
	}
	c := RestoreConfig{Version: fc.Version, Storage: st, ContinueOnFailure: fc.ContinueOnFailure}
	if c.Timeout, err = parseDuration("timeout", fc.Timeout); err != nil {
		return RestoreConfig{}, err
	}
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return RestoreConfig{}, err
	}
	return c, nil
}

// parse reads, expands and decodes the common shape and the storage.
func parse(arg string) (fileConfig, Storage, error) {
	var fc fileConfig
	arg = strings.TrimSpace(arg)
	if arg == "" {
		return fc, Storage{}, fmt.Errorf("%w: empty: want the path of a JSON file", ErrInvalidConfig)
	}
	data := []byte(arg)
	if !strings.HasPrefix(arg, "{") {
		b, err := os.ReadFile(arg)
		if err != nil {
			return fc, Storage{}, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
		data = b
	}
	data = []byte(os.ExpandEnv(string(data)))
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&fc); err != nil {
		return fc, Storage{}, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	st := Storage{Type: fc.Type}
	switch fc.Type {
	case TypeS3:
		st.S3 = &S3Config{}
		if err := unmarshalSub(fc.Sub, st.S3); err != nil {
			return fc, Storage{}, err
		}
	case TypeFile:
		st.File = &FileConfig{}
		if err := unmarshalSub(fc.Sub, st.File); err != nil {
			return fc, Storage{}, err
		}
	}
	return fc, st, nil
}

func unmarshalSub(sub json.RawMessage, v any) error {
	if len(sub) == 0 || string(sub) == "null" {
		return fmt.Errorf("%w: \"sub\" is missing", ErrInvalidConfig)
	}
	if err := json.Unmarshal(sub, v); err != nil {
		return fmt.Errorf("%w: sub: %w", ErrInvalidConfig, err)
	}
	return nil
}

// parseDuration reads a Go duration string ("30s") or a number of
// nanoseconds, as rqlite's auto.Duration; absent is 0.
func parseDuration(key string, raw json.RawMessage) (time.Duration, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return 0, fmt.Errorf("%w: %s: %w", ErrInvalidConfig, key, err)
	}
	switch x := v.(type) {
	case float64:
		return time.Duration(x), nil
	case string:
		d, err := time.ParseDuration(x)
		if err != nil {
			return 0, fmt.Errorf("%w: %s: %w", ErrInvalidConfig, key, err)
		}
		return d, nil
	}
	return 0, fmt.Errorf("%w: %s: want a duration such as \"30s\"", ErrInvalidConfig, key)
}

// Validate checks the storage part.
func (s Storage) Validate() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: "+f, append([]any{ErrInvalidConfig}, a...)...) }
	switch s.Type {
	case TypeS3:
		if s.S3 == nil {
			return bad("s3: \"sub\" is missing")
		}
		if s.S3.Bucket == "" {
			return bad("s3: sub.bucket is required")
		}
		if s.S3.Path == "" {
			return bad("s3: sub.path (the object key) is required")
		}
		if (s.S3.AccessKeyID == "") != (s.S3.SecretAccessKey == "") {
			return bad("s3: sub.access_key_id and sub.secret_access_key go together (or set neither to use the AWS environment)")
		}
	case TypeFile:
		if s.File == nil {
			return bad("file: \"sub\" is missing")
		}
		if s.File.Dir == "" || s.File.File == "" {
			return bad("file: sub.dir and sub.file are required")
		}
		if strings.ContainsRune(s.File.File, os.PathSeparator) {
			return bad("file: sub.file %q must be a file name, not a path", s.File.File)
		}
	case TypeGCS:
		return fmt.Errorf("%w: %w: \"gcs\" (Google Cloud Storage) is not supported by Skiff: use \"s3\" (GCS has an S3-compatible endpoint, storage.googleapis.com, with HMAC keys) or \"file\"",
			ErrInvalidConfig, ErrUnsupportedType)
	case "":
		return bad("\"type\" is required: \"s3\" or \"file\"")
	default:
		return fmt.Errorf("%w: %w: %q (want \"s3\" or \"file\")", ErrInvalidConfig, ErrUnsupportedType, s.Type)
	}
	return nil
}

func checkVersion(v int) error {
	if v > ConfigVersion {
		return fmt.Errorf("%w: version %d (this Skiff reads version %d and older)", ErrInvalidConfig, v, ConfigVersion)
	}
	return nil
}

// Validate checks c.
func (c Config) Validate() error {
	if err := checkVersion(c.Version); err != nil {
		return err
	}
	if err := c.Storage.Validate(); err != nil {
		return err
	}
	if c.Interval <= 0 {
		return fmt.Errorf("%w: interval must be a positive duration such as \"1h\"", ErrInvalidConfig)
	}
	return nil
}

// WithDefaults fills zero fields.
func (c RestoreConfig) WithDefaults() RestoreConfig {
	if c.Timeout == 0 {
		c.Timeout = DefaultRestoreTimeout
	}
	return c
}

// Validate checks c.
func (c RestoreConfig) Validate() error {
	if err := checkVersion(c.Version); err != nil {
		return err
	}
	if err := c.Storage.Validate(); err != nil {
		return err
	}
	if c.Timeout < 0 {
		return fmt.Errorf("%w: timeout must not be negative", ErrInvalidConfig)
	}
	return nil
}
