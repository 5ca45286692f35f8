package backup

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseBackupConfig(t *testing.T) {
	t.Setenv("SKIFF_TEST_KEY", "AKID")
	t.Setenv("SKIFF_TEST_SECRET", "s3cr3t")
	t.Setenv("SKIFF_TEST_BUCKET", "bkt")
	tests := []struct {
		name    string
		json    string
		wantErr error
		check   func(t *testing.T, c Config)
	}{
		{name: "s3 with env expansion", json: `{"version":1,"type":"s3","interval":"5m","vacuum":true,"timestamp":true,
			"sub":{"access_key_id":"$SKIFF_TEST_KEY","secret_access_key":"${SKIFF_TEST_SECRET}","bucket":"${SKIFF_TEST_BUCKET}",
			"region":"us-west-2","path":"backups/db.sqlite.gz","endpoint":"http://127.0.0.1:9000","force_path_style":true}}`,
			check: func(t *testing.T, c Config) {
				s := c.S3
				if c.Type != TypeS3 || c.Interval != 5*time.Minute || !c.Vacuum || !c.Timestamp || c.NoCompress || s == nil {
					t.Fatalf("config %+v", c)
				}
				if s.AccessKeyID != "AKID" || s.SecretAccessKey != "s3cr3t" || s.Bucket != "bkt" || s.Region != "us-west-2" ||
					s.Path != "backups/db.sqlite.gz" || s.Endpoint != "http://127.0.0.1:9000" || !s.ForcePathStyle {
					t.Fatalf("s3 %+v", s)
				}
			}},
		{name: "file", json: `{"version":1,"type":"file","interval":"30s","no_compress":true,"sub":{"dir":"/var/backups","file":"backup.sqlite"}}`,
			check: func(t *testing.T, c Config) {
				if c.Type != TypeFile || c.File == nil || c.File.Dir != "/var/backups" || c.File.File != "backup.sqlite" || !c.NoCompress || c.Interval != 30*time.Second {
					t.Fatalf("config %+v %+v", c, c.File)
				}
			}},
		{name: "interval in nanoseconds, as rqlite accepts", json: `{"type":"file","interval":1000000000,"sub":{"dir":"d","file":"f"}}`,
			check: func(t *testing.T, c Config) {
				if c.Interval != time.Second {
					t.Fatalf("interval %s", c.Interval)
				}
			}},
		{name: "gcs refused", json: `{"version":1,"type":"gcs","interval":"1h","sub":{"bucket":"b","path":"p"}}`, wantErr: ErrUnsupportedType},
		{name: "unknown type", json: `{"type":"ftp","interval":"1h","sub":{}}`, wantErr: ErrUnsupportedType},
		{name: "missing type", json: `{"interval":"1h","sub":{}}`, wantErr: ErrInvalidConfig},
		{name: "missing bucket", json: `{"type":"s3","interval":"1h","sub":{"path":"p"}}`, wantErr: ErrInvalidConfig},
		{name: "missing path", json: `{"type":"s3","interval":"1h","sub":{"bucket":"b"}}`, wantErr: ErrInvalidConfig},
		{name: "key without secret", json: `{"type":"s3","interval":"1h","sub":{"bucket":"b","path":"p","access_key_id":"k"}}`, wantErr: ErrInvalidConfig},
		{name: "unset env var leaves the bucket empty", json: `{"type":"s3","interval":"1h","sub":{"bucket":"$SKIFF_TEST_UNSET_VAR","path":"p"}}`, wantErr: ErrInvalidConfig},
		{name: "missing sub", json: `{"type":"s3","interval":"1h"}`, wantErr: ErrInvalidConfig},
		{name: "file without dir", json: `{"type":"file","interval":"1h","sub":{"file":"f"}}`, wantErr: ErrInvalidConfig},
		{name: "file name with a slash", json: `{"type":"file","interval":"1h","sub":{"dir":"d","file":"a/b"}}`, wantErr: ErrInvalidConfig},
		{name: "bad interval", json: `{"type":"file","interval":"soon","sub":{"dir":"d","file":"f"}}`, wantErr: ErrInvalidConfig},
		{name: "zero interval", json: `{"type":"file","interval":"0s","sub":{"dir":"d","file":"f"}}`, wantErr: ErrInvalidConfig},
		{name: "negative interval", json: `{"type":"file","interval":"-1s","sub":{"dir":"d","file":"f"}}`, wantErr: ErrInvalidConfig},
		{name: "missing interval", json: `{"type":"file","sub":{"dir":"d","file":"f"}}`, wantErr: ErrInvalidConfig},
		{name: "interval of the wrong type", json: `{"type":"file","interval":true,"sub":{"dir":"d","file":"f"}}`, wantErr: ErrInvalidConfig},
		{name: "newer version", json: `{"version":2,"type":"file","interval":"1h","sub":{"dir":"d","file":"f"}}`, wantErr: ErrInvalidConfig},
		{name: "malformed JSON", json: `{"type":`, wantErr: ErrInvalidConfig},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Both forms: inline JSON and a file.
			path := filepath.Join(t.TempDir(), "backup.json")
			if err := os.WriteFile(path, []byte(tc.json), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, arg := range []string{tc.json, path} {
				c, err := ParseBackupConfig(arg)
				if tc.wantErr != nil {
					if !errors.Is(err, tc.wantErr) {
						t.Fatalf("err %v, want %v", err, tc.wantErr)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				tc.check(t, c)
			}
		})
	}
}

func TestParseBackupConfigGCSMessage(t *testing.T) {
	_, err := ParseBackupConfig(`{"type":"gcs","interval":"1h","sub":{"bucket":"b"}}`)
	if err == nil || !strings.Contains(err.Error(), "not supported by Skiff") {
		t.Fatalf("err %v, want a clear refusal", err)
	}
}

func TestParseBackupConfigMissingFile(t *testing.T) {
	_, err := ParseBackupConfig(filepath.Join(t.TempDir(), "none.json"))
	if !errors.Is(err, ErrInvalidConfig) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err %v", err)
	}
}

func TestParseRestoreConfig(t *testing.T) {
	t.Setenv("SKIFF_TEST_DIR", "/restore/from")
	tests := []struct {
		name    string
		json    string
		wantErr error
		check   func(t *testing.T, c RestoreConfig)
	}{
		{name: "s3 with defaults", json: `{"version":1,"type":"s3","sub":{"bucket":"b","path":"p","region":"r"}}`,
			check: func(t *testing.T, c RestoreConfig) {
				if c.Timeout != DefaultRestoreTimeout || c.ContinueOnFailure || c.S3 == nil || c.S3.Bucket != "b" {
					t.Fatalf("config %+v", c)
				}
			}},
		{name: "file with timeout and continue_on_failure", json: `{"type":"file","timeout":"2m","continue_on_failure":true,"sub":{"dir":"$SKIFF_TEST_DIR","file":"f.gz"}}`,
			check: func(t *testing.T, c RestoreConfig) {
				if c.Timeout != 2*time.Minute || !c.ContinueOnFailure || c.File == nil || c.File.Dir != "/restore/from" {
					t.Fatalf("config %+v", c)
				}
			}},
		{name: "gcs refused", json: `{"type":"gcs","sub":{"bucket":"b"}}`, wantErr: ErrUnsupportedType},
		{name: "missing bucket", json: `{"type":"s3","sub":{"path":"p"}}`, wantErr: ErrInvalidConfig},
		{name: "bad timeout", json: `{"type":"s3","timeout":"x","sub":{"bucket":"b","path":"p"}}`, wantErr: ErrInvalidConfig},
		{name: "negative timeout", json: `{"type":"s3","timeout":"-1s","sub":{"bucket":"b","path":"p"}}`, wantErr: ErrInvalidConfig},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseRestoreConfig(tc.json)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}
