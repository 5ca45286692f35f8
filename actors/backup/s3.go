package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// sumMetaKey is the object metadata key (x-amz-meta-skiff-backup-sum)
// holding the content sum; rqlite keeps its ID under
// x-amz-meta-x-rqlite-auto-backup-id the same way.
const sumMetaKey = "Skiff-Backup-Sum"

// defaultS3Endpoint is AWS S3, used when the config names none.
const defaultS3Endpoint = "s3.amazonaws.com"

// s3PartSize is the multipart upload's part size: the staged file is read
// in place (io.ReaderAt), so memory does not grow with it; 16 MiB parts
// keep a 1 GB upload at 64 parts, well inside S3's 10,000.
const s3PartSize = 16 << 20

// s3Store uploads to an S3-compatible object store with minio-go.
type s3Store struct {
	c         *minio.Client
	cfg       S3Config
	endpoint  string
	timestamp bool
	now       func() time.Time
	partSize  uint64
}

func newS3Store(c S3Config, timestamp bool) (*s3Store, error) {
	host, secure := defaultS3Endpoint, true
	shown := c.Endpoint
	if c.Endpoint != "" {
		host = c.Endpoint
		if strings.Contains(c.Endpoint, "://") {
			u, err := url.Parse(c.Endpoint)
			if err != nil || u.Host == "" {
				return nil, fmt.Errorf("%w: s3: endpoint %q is not a URL or host:port", ErrInvalidConfig, c.Endpoint)
			}
			switch u.Scheme {
			case "http":
				secure = false
			case "https":
			default:
				return nil, fmt.Errorf("%w: s3: endpoint %q: want http:// or https://", ErrInvalidConfig, c.Endpoint)
			}
			host = u.Host
			// Shown in /status and logs: never with user:password@.
			u.User = nil
			shown = u.String()
		}
	}
	var creds *credentials.Credentials
	if c.AccessKeyID != "" {
		creds = credentials.NewStaticV4(c.AccessKeyID, c.SecretAccessKey, "")
	} else {
		// No keys in the file: the AWS environment, as rqlite's SDK
		// default chain (variables, shared file, instance role).
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{}, &credentials.FileAWSCredentials{}, &credentials.IAM{Client: &http.Client{Timeout: 5 * time.Second}},
		})
	}
	lookup := minio.BucketLookupAuto
	if c.ForcePathStyle {
		lookup = minio.BucketLookupPath
	}
	mc, err := minio.New(host, &minio.Options{Creds: creds, Secure: secure, Region: c.Region, BucketLookup: lookup})
	if err != nil {
		return nil, fmt.Errorf("%w: s3: %w", ErrInvalidConfig, err)
	}
	return &s3Store{c: mc, cfg: c, endpoint: shown, timestamp: timestamp, now: time.Now, partSize: s3PartSize}, nil
}

// String names the object as rqlite does: s3://bucket/key on AWS, else
// endpoint/bucket/key.
func (s *s3Store) String() string {
	if s.endpoint == "" || strings.HasSuffix(s.endpoint, "amazonaws.com") {
		return fmt.Sprintf("s3://%s/%s", s.cfg.Bucket, s.cfg.Path)
	}
	return fmt.Sprintf("%s/%s/%s", strings.TrimSuffix(s.endpoint, "/"), s.cfg.Bucket, s.cfg.Path)
}

// Upload puts the object. With a known size and an io.ReaderAt (the
// staged file), minio-go uploads parts straight from the file.
func (s *s3Store) Upload(ctx context.Context, r io.Reader, size int64, sum string) error {
	key := s.cfg.Path
	if s.timestamp {
		key = TimestampedPath(key, s.now())
	}
	// DisableContentSha256: over http:// minio-go would otherwise send
	// aws-chunked bodies, which some S3-compatible servers (gofakes3
	// among them) store undecoded in multipart parts; over https:// it
	// sends an unsigned payload anyway.
	opts := minio.PutObjectOptions{PartSize: s.partSize, ContentType: "application/octet-stream", DisableContentSha256: true}
	if sum != "" {
		opts.UserMetadata = map[string]string{sumMetaKey: sum}
	}
	if _, err := s.c.PutObject(ctx, s.cfg.Bucket, key, r, size, opts); err != nil {
		return fmt.Errorf("%w: upload to %s: %w", ErrStorage, s, err)
	}
	return nil
}

// CurrentSum reads the newest object's metadata.
func (s *s3Store) CurrentSum(ctx context.Context) (string, error) {
	key, err := s.newestKey(ctx)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return "", nil
		}
		return "", err
	}
	info, err := s.c.StatObject(ctx, s.cfg.Bucket, key, minio.StatObjectOptions{})
	if err != nil {
		if notFound(err) {
			return "", nil
		}
		return "", fmt.Errorf("%w: stat %s: %w", ErrStorage, s, err)
	}
	for k, v := range info.UserMetadata {
		if strings.EqualFold(k, sumMetaKey) || strings.EqualFold(k, "X-Amz-Meta-"+sumMetaKey) {
			return v, nil
		}
	}
	return "", nil
}

// newestKey is the configured key when timestamps are off or it exists,
// else the newest timestamped key of that name.
func (s *s3Store) newestKey(ctx context.Context) (string, error) {
	if !s.timestamp {
		return s.cfg.Path, nil
	}
	return s.newestTimestamped(ctx)
}

// newestTimestamped lists the key's directory for timestamped names.
func (s *s3Store) newestTimestamped(ctx context.Context) (string, error) {
	dir, base := "", s.cfg.Path
	if i := strings.LastIndexByte(s.cfg.Path, '/'); i >= 0 {
		dir, base = s.cfg.Path[:i+1], s.cfg.Path[i+1:]
	}
	re := timestamped(base)
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var names []string
	for obj := range s.c.ListObjects(lctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: dir}) {
		if obj.Err != nil {
			if notFound(obj.Err) {
				break
			}
			return "", fmt.Errorf("%w: list %s: %w", ErrStorage, s, obj.Err)
		}
		if strings.HasPrefix(obj.Key, dir) && re.MatchString(obj.Key[len(dir):]) {
			names = append(names, obj.Key)
		}
	}
	if len(names) == 0 {
		return "", fmt.Errorf("%w: %s", ErrNotFound, s)
	}
	return newest(names), nil
}

// Download gets the configured key, or else the newest timestamped one.
func (s *s3Store) Download(ctx context.Context, w io.Writer) (int64, error) {
	n, err := s.get(ctx, s.cfg.Path, w)
	if !errors.Is(err, ErrNotFound) {
		return n, err
	}
	key, lerr := s.newestTimestamped(ctx)
	if errors.Is(lerr, ErrNotFound) {
		return 0, err
	}
	if lerr != nil {
		// A failed listing (credentials, network) is not a missing backup.
		return 0, lerr
	}
	return s.get(ctx, key, w)
}

func (s *s3Store) get(ctx context.Context, key string, w io.Writer) (int64, error) {
	obj, err := s.c.GetObject(ctx, s.cfg.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return 0, s.getErr(key, err)
	}
	defer obj.Close()
	n, err := io.Copy(w, obj)
	if err != nil {
		return n, s.getErr(key, err)
	}
	return n, nil
}

func (s *s3Store) getErr(key string, err error) error {
	if notFound(err) {
		return fmt.Errorf("%w: %s/%s/%s", ErrNotFound, s.endpointName(), s.cfg.Bucket, key)
	}
	return fmt.Errorf("%w: download %s/%s/%s: %w", ErrStorage, s.endpointName(), s.cfg.Bucket, key, err)
}

func (s *s3Store) endpointName() string {
	if s.endpoint == "" {
		return "s3:/"
	}
	return strings.TrimSuffix(s.endpoint, "/")
}

// notFound reports a missing key or bucket.
func notFound(err error) bool {
	switch minio.ToErrorResponse(err).Code {
	case minio.NoSuchKey, minio.NoSuchBucket, "NotFound":
		return true
	}
	return false
}
