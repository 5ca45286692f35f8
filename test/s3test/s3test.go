package s3test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// Defaults of Config.
const (
	DefaultBucket    = "skiff-backups"
	DefaultAccessKey = "skiff-test-access-key"
	DefaultSecretKey = "skiff-test-secret-key"
	DefaultRegion    = "us-east-1"
	defaultAddr      = "127.0.0.1:0"
)

// Errors.
var (
	// ErrConfig is an invalid Config.
	ErrConfig = errors.New("s3test: invalid config")
	// ErrNotFound is a missing bucket or object.
	ErrNotFound = errors.New("s3test: not found")
)

// Config configures a Server; the zero value is valid (see the defaults).
type Config struct {
	// Addr is the listening address, on loopback; default 127.0.0.1:0.
	Addr string
	// Buckets are created at start; default one, DefaultBucket.
	Buckets []string
	// AccessKey is the one access key accepted; the secret is not
	// checked (the tests need only a wrong key refused).
	AccessKey string
	// SecretKey is handed to the tests that build configurations.
	SecretKey string
	// CompleteDelay slows every CompleteMultipartUpload down by this
	// much, to test clients against S3's slow completions (a fault
	// injected, see complete).
	CompleteDelay time.Duration
}

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = defaultAddr
	}
	if len(c.Buckets) == 0 {
		c.Buckets = []string{DefaultBucket}
	}
	if c.AccessKey == "" {
		c.AccessKey = DefaultAccessKey
	}
	if c.SecretKey == "" {
		c.SecretKey = DefaultSecretKey
	}
	return c
}

// Validate checks c (with its defaults applied).
func (c Config) Validate() error {
	c = c.withDefaults()
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("%w: addr %q: %v", ErrConfig, c.Addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%w: addr %q is not a loopback IP", ErrConfig, c.Addr)
	}
	for _, b := range c.Buckets {
		if err := gofakes3.ValidateBucketName(b); err != nil {
			return fmt.Errorf("%w: bucket %q: %v", ErrConfig, b, err)
		}
	}
	return nil
}

// Server is a running fake S3.
type Server struct {
	cfg     Config
	backend *s3mem.Backend
	ln      net.Listener
	srv     *http.Server
	served  chan struct{}

	mu       sync.Mutex
	uploads  map[string]int // "bucket/key" -> object writes completed
	refused  int            // requests answered 403 for their credentials
	requests int
}

// New starts a server with cfg.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	backend := s3mem.New()
	for _, b := range cfg.Buckets {
		if err := backend.CreateBucket(b); err != nil {
			return nil, fmt.Errorf("s3test: create bucket %s: %w", b, err)
		}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("s3test: %w", err)
	}
	s := &Server{cfg: cfg, backend: backend, ln: ln, served: make(chan struct{}), uploads: map[string]int{}}
	// WithoutVersioning: a backup object is overwritten in place, as in an
	// unversioned bucket.
	fake := gofakes3.New(backend, gofakes3.WithoutVersioning(), gofakes3.WithIntegrityCheck(true),
		gofakes3.WithLogger(gofakes3.DiscardLog()))
	s.srv = &http.Server{Handler: s.handler(fake.Server()), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(s.served)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// Start starts a server for t (failing it on error) and closes it when
// the test ends.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Close stops the server at once: connections in flight are cut, as when
// a real endpoint goes away.
func (s *Server) Close() {
	_ = s.srv.Close()
	<-s.served
}

// Endpoint is the server's URL, http://127.0.0.1:port.
func (s *Server) Endpoint() string { return "http://" + s.ln.Addr().String() }

// Addr is the listening address, 127.0.0.1:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// AccessKey and SecretKey are the credentials the server accepts.
func (s *Server) AccessKey() string { return s.cfg.AccessKey }
func (s *Server) SecretKey() string { return s.cfg.SecretKey }

// Region is the region clients may name; the server accepts any.
func (s *Server) Region() string { return DefaultRegion }

// Bucket is the first configured bucket.
func (s *Server) Bucket() string { return s.cfg.Buckets[0] }

// handler checks the credentials, decodes aws-chunked bodies and counts
// completed object writes around gofakes3's handler.
func (s *Server) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests++
		s.mu.Unlock()
		if key, ok := accessKey(r); !ok || key != s.cfg.AccessKey {
			s.mu.Lock()
			s.refused++
			s.mu.Unlock()
			// Drain a little of the body so the client reads the answer
			// rather than a reset; S3 does not wait for large bodies.
			_, _ = io.CopyN(io.Discard, r.Body, 1<<20)
			code, msg := "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records."
			if !ok {
				code, msg = "AccessDenied", "Access Denied"
			}
			writeError(w, http.StatusForbidden, code, msg, r.URL.Path)
			return
		}
		if err := unchunk(r); err != nil {
			writeError(w, http.StatusBadRequest, "IncompleteBody", err.Error(), r.URL.Path)
			return
		}
		if r.Method == http.MethodPost && r.URL.Query().Has("uploadId") {
			s.complete(w, r, next)
			return
		}
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		if rec.status == http.StatusOK && isObjectWrite(r) {
			s.counted(r)
		}
	})
}

func (s *Server) counted(r *http.Request) {
	s.mu.Lock()
	s.uploads[strings.TrimPrefix(r.URL.Path, "/")]++
	s.mu.Unlock()
}

// completeKeepAlive is how long a CompleteMultipartUpload may take before
// the answer starts, and then the period of the whitespace sent.
const completeKeepAlive = 2 * time.Second

// complete answers CompleteMultipartUpload as S3 does when assembling
// takes a while: 200 at once, whitespace while it works, then the result
// document, or an error document in that 200 (S3's documented
// behaviour; clients expect it). gofakes3 assembles a large object in
// memory slowly enough, on a loaded machine, for a client's response
// header timeout (minio-go's is a minute) to fire, and the client's retry
// then finds the upload gone (NoSuchUpload).
func (s *Server) complete(w http.ResponseWriter, r *http.Request, next http.Handler) {
	// The request document is small; read it first, so that answering
	// early cannot cut the request body.
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeError(w, http.StatusBadRequest, "IncompleteBody", err.Error(), r.URL.Path)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(s.cfg.CompleteDelay)
		next.ServeHTTP(rec, r)
	}()
	timer := time.NewTimer(completeKeepAlive)
	defer timer.Stop()
	select {
	case <-done:
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		if rec.Code == http.StatusOK {
			s.counted(r)
		}
		return
	case <-timer.C:
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusOK)
	flush := http.NewResponseController(w).Flush
	tick := time.NewTicker(completeKeepAlive)
	defer tick.Stop()
	for {
		_, _ = w.Write([]byte(" "))
		_ = flush()
		select {
		case <-done:
			_, _ = w.Write(rec.Body.Bytes())
			if rec.Code == http.StatusOK {
				s.counted(r)
			}
			return
		case <-tick.C:
		}
	}
}

// isObjectWrite: a single PUT of an object (not a part, not a copy) or a
// completed multipart upload, path style.
func isObjectWrite(r *http.Request) bool {
	q := r.URL.Query()
	switch r.Method {
	case http.MethodPut:
		return !q.Has("partNumber") && !q.Has("uploadId") && r.Header.Get("X-Amz-Copy-Source") == "" &&
			strings.Count(strings.Trim(r.URL.Path, "/"), "/") >= 1
	case http.MethodPost:
		return q.Has("uploadId")
	}
	return false
}

// accessKey is the access key a request was signed with: SigV4's
// Credential=KEY/date/region/s3/aws4_request in the Authorization header
// or X-Amz-Credential in a presigned URL, or SigV2's "AWS KEY:sig".
func accessKey(r *http.Request) (string, bool) {
	if c := r.URL.Query().Get("X-Amz-Credential"); c != "" {
		key, _, _ := strings.Cut(c, "/")
		return key, true
	}
	auth := r.Header.Get("Authorization")
	if rest, ok := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 "); ok {
		for _, f := range strings.Split(rest, ",") {
			if c, ok := strings.CutPrefix(strings.TrimSpace(f), "Credential="); ok {
				key, _, _ := strings.Cut(c, "/")
				return key, true
			}
		}
		return "", false
	}
	if rest, ok := strings.CutPrefix(auth, "AWS "); ok {
		key, _, _ := strings.Cut(rest, ":")
		return key, true
	}
	return "", false
}

// writeError writes S3's XML error document.
func writeError(w http.ResponseWriter, status int, code, msg, resource string) {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	_ = xml.NewEncoder(&b).Encode(struct {
		XMLName  xml.Name `xml:"Error"`
		Code     string   `xml:"Code"`
		Message  string   `xml:"Message"`
		Resource string   `xml:"Resource"`
	}{Code: code, Message: msg, Resource: resource})
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *statusRecorder) WriteHeader(status int) {
	if !r.wrote {
		r.status, r.wrote = status, true
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

// Object returns the bytes and the user metadata (x-amz-meta-*, with the
// names as stored: canonical header form) of an object.
func (s *Server) Object(bucket, key string) ([]byte, map[string]string, error) {
	obj, err := s.backend.GetObject(bucket, key, nil)
	if err != nil {
		return nil, nil, notFound(err, bucket, key)
	}
	defer obj.Contents.Close()
	b, err := io.ReadAll(obj.Contents)
	if err != nil {
		return nil, nil, err
	}
	meta := map[string]string{}
	for k, v := range obj.Metadata {
		if strings.HasPrefix(strings.ToLower(k), "x-amz-meta-") {
			meta[k] = v
		}
	}
	return b, meta, nil
}

// Size is an object's size in bytes, without reading it.
func (s *Server) Size(bucket, key string) (int64, error) {
	obj, err := s.backend.HeadObject(bucket, key)
	if err != nil {
		return 0, notFound(err, bucket, key)
	}
	return obj.Size, nil
}

// Keys lists a bucket's object keys, sorted.
func (s *Server) Keys(bucket string) ([]string, error) {
	list, err := s.backend.ListBucket(bucket, nil, gofakes3.ListBucketPage{})
	if err != nil {
		return nil, notFound(err, bucket, "")
	}
	var keys []string
	for _, c := range list.Contents {
		keys = append(keys, c.Key)
	}
	sort.Strings(keys)
	return keys, nil
}

// Put stores an object directly (not counted as an upload), with user
// metadata given without the x-amz-meta- prefix.
func (s *Server) Put(bucket, key string, data []byte, meta map[string]string) error {
	// gofakes3 serves Last-Modified from the metadata it stores.
	m := map[string]string{"Last-Modified": time.Now().UTC().Format("Mon, 02 Jan 2006 15:04:05") + " GMT"}
	for k, v := range meta {
		m[http.CanonicalHeaderKey("X-Amz-Meta-"+k)] = v
	}
	_, err := s.backend.PutObject(bucket, key, m, bytes.NewReader(data), int64(len(data)), nil)
	return notFound(err, bucket, key)
}

// Delete removes an object.
func (s *Server) Delete(bucket, key string) error {
	_, err := s.backend.DeleteObject(bucket, key)
	return notFound(err, bucket, key)
}

// Uploads is how many object writes of bucket/key completed through the
// HTTP API (single PUTs and completed multipart uploads).
func (s *Server) Uploads(bucket, key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.uploads[bucket+"/"+key]
}

// Refused is how many requests were answered 403 for their credentials.
func (s *Server) Refused() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

// Requests is how many requests the server received.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

func notFound(err error, bucket, key string) error {
	if err == nil {
		return nil
	}
	if gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchKey) || gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchBucket) {
		return fmt.Errorf("%w: %s", ErrNotFound, path(bucket, key))
	}
	return fmt.Errorf("s3test: %s: %w", path(bucket, key), err)
}

func path(bucket, key string) string {
	if key == "" {
		return bucket
	}
	return bucket + "/" + (&url.URL{Path: key}).EscapedPath()
}
