package backup

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
)

// Store is where backups go and come from.
type Store interface {
	// Upload stores size bytes read from r as the backup, with sum (the
	// content sum, see Uploader) kept beside it.
	Upload(ctx context.Context, r io.Reader, size int64, sum string) error
	// CurrentSum is the sum kept with the newest backup, read from the
	// storage every time; "" when there is none or it carries none.
	CurrentSum(ctx context.Context) (string, error)
	// Download writes the backup to w: the configured object, or when it
	// does not exist, the newest timestamped one of that name. ErrNotFound
	// when there is neither.
	Download(ctx context.Context, w io.Writer) (int64, error)
	fmt.Stringer
}

// NewStore builds the store st names; timestamp names each upload with
// its time (Config.Timestamp).
func NewStore(st Storage, timestamp bool) (Store, error) {
	if err := st.Validate(); err != nil {
		return nil, err
	}
	switch st.Type {
	case TypeS3:
		return newS3Store(*st.S3, timestamp)
	case TypeFile:
		return newFileStore(*st.File, timestamp), nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnsupportedType, st.Type)
}

// timestampLayout is rqlite's (auto/aws TimestampedPath): UTC, to the
// second, so names sort by time.
const timestampLayout = "20060102150405"

// TimestampedPath prefixes the last segment of path with t, as rqlite:
// "backups/db.gz" at 2025-01-02 03:04:05 UTC is
// "backups/20250102030405_db.gz".
func TimestampedPath(path string, t time.Time) string {
	dir, base := "", path
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		dir, base = path[:i+1], path[i+1:]
	}
	return dir + t.UTC().Format(timestampLayout) + "_" + base
}

// timestamped matches the base names TimestampedPath gives base.
func timestamped(base string) *regexp.Regexp {
	return regexp.MustCompile(`^[0-9]{14}_` + regexp.QuoteMeta(base) + `$`)
}

// newest is the greatest of names (timestamps sort as strings); "" if none.
func newest(names []string) string {
	best := ""
	for _, n := range names {
		if n > best {
			best = n
		}
	}
	return best
}
