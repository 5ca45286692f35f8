package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// client is a minio-go client for s, path style over plain HTTP, as the
// daemon builds one from force_path_style and an http:// endpoint.
func client(t *testing.T, s *Server, accessKey string) *minio.Client {
	t.Helper()
	c, err := minio.New(strings.TrimPrefix(s.Endpoint(), "http://"), &minio.Options{
		Creds:        credentials.NewStaticV4(accessKey, s.SecretKey(), ""),
		Secure:       false,
		Region:       s.Region(),
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// TestRoundTrip: single and multipart uploads (streamed with aws-chunked
// signing, as minio-go does over plain HTTP) come back byte for byte,
// with their user metadata, and are counted as one upload each.
func TestRoundTrip(t *testing.T) {
	s := Start(t, Config{})
	c := client(t, s, s.AccessKey())
	for _, tc := range []struct {
		name     string
		size     int
		partSize uint64
	}{
		{"small", 1000, 0},
		{"empty", 0, 0},
		{"multipart", 12<<20 + 17, 5 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := make([]byte, tc.size)
			_, _ = rand.Read(data)
			key := "dir/" + tc.name + ".gz"
			info, err := c.PutObject(ctx(t), s.Bucket(), key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{
				PartSize: tc.partSize, UserMetadata: map[string]string{"Skiff-Id": "abc123"}})
			if err != nil {
				t.Fatalf("PutObject: %v", err)
			}
			if info.Size != int64(len(data)) {
				t.Errorf("PutObject size %d, want %d", info.Size, len(data))
			}
			got, meta, err := s.Object(s.Bucket(), key)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Errorf("stored %d bytes, want the %d uploaded", len(got), len(data))
			}
			if meta["X-Amz-Meta-Skiff-Id"] != "abc123" {
				t.Errorf("stored metadata %v, want X-Amz-Meta-Skiff-Id abc123", meta)
			}
			st, err := c.StatObject(ctx(t), s.Bucket(), key, minio.StatObjectOptions{})
			if err != nil || st.UserMetadata["Skiff-Id"] != "abc123" {
				t.Errorf("StatObject: %v, user metadata %v", err, st.UserMetadata)
			}
			obj, err := c.GetObject(ctx(t), s.Bucket(), key, minio.GetObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			back, err := io.ReadAll(obj)
			obj.Close()
			if err != nil || !bytes.Equal(back, data) {
				t.Errorf("GetObject: %d bytes, %v; want the %d uploaded", len(back), err, len(data))
			}
			if n, err := s.Size(s.Bucket(), key); err != nil || n != int64(len(data)) {
				t.Errorf("Size = %d, %v; want %d", n, err, len(data))
			}
			if n := s.Uploads(s.Bucket(), key); n != 1 {
				t.Errorf("Uploads = %d, want 1", n)
			}
		})
	}
}

// TestSlowComplete: a CompleteMultipartUpload slower than the keep-alive
// period is answered 200 at once, then whitespace, then the result, as
// S3 does; minio-go takes it, and the object is stored whole.
func TestSlowComplete(t *testing.T) {
	s := Start(t, Config{CompleteDelay: 2*completeKeepAlive + time.Second})
	c := client(t, s, s.AccessKey())
	data := make([]byte, 11<<20)
	_, _ = rand.Read(data)
	if _, err := c.PutObject(ctx(t), s.Bucket(), "slow", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{
		PartSize: 5 << 20, DisableContentSha256: true}); err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	got, _, err := s.Object(s.Bucket(), "slow")
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("stored %d bytes (%v), want the %d uploaded", len(got), err, len(data))
	}
	if n := s.Uploads(s.Bucket(), "slow"); n != 1 {
		t.Errorf("Uploads = %d, want 1", n)
	}
}

// TestWrongAccessKey: a request signed with another access key gets S3's
// 403 InvalidAccessKeyId; an unsigned one 403 AccessDenied; nothing is
// stored.
func TestWrongAccessKey(t *testing.T) {
	s := Start(t, Config{})
	c := client(t, s, "not-the-key")
	_, err := c.PutObject(ctx(t), s.Bucket(), "k", bytes.NewReader([]byte("x")), 1, minio.PutObjectOptions{})
	var er minio.ErrorResponse
	if !errors.As(err, &er) || er.StatusCode != http.StatusForbidden || er.Code != "InvalidAccessKeyId" {
		t.Errorf("PutObject with a wrong key: %v (%+v), want 403 InvalidAccessKeyId", err, er)
	}
	resp, err := http.Get(s.Endpoint() + "/" + s.Bucket() + "/k")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !bytes.Contains(b, []byte("<Code>AccessDenied</Code>")) {
		t.Errorf("unsigned GET: %d %s, want 403 AccessDenied", resp.StatusCode, b)
	}
	if keys, err := s.Keys(s.Bucket()); err != nil || len(keys) != 0 {
		t.Errorf("Keys = %v, %v; want none", keys, err)
	}
	if s.Refused() < 2 {
		t.Errorf("Refused = %d, want >= 2", s.Refused())
	}
}

// TestHelpers: Put, Keys, Object, Delete, and their not-found errors, seen
// by the client too.
func TestHelpers(t *testing.T) {
	s := Start(t, Config{Buckets: []string{"one", "two"}})
	if err := s.Put("two", "a/b", []byte("hello"), map[string]string{"Sum": "1"}); err != nil {
		t.Fatal(err)
	}
	c := client(t, s, s.AccessKey())
	st, err := c.StatObject(ctx(t), "two", "a/b", minio.StatObjectOptions{})
	if err != nil || st.Size != 5 || st.UserMetadata["Sum"] != "1" {
		t.Errorf("StatObject of a planted object: %v, %+v", err, st)
	}
	if keys, err := s.Keys("two"); err != nil || len(keys) != 1 || keys[0] != "a/b" {
		t.Errorf("Keys = %v, %v", keys, err)
	}
	if s.Uploads("two", "a/b") != 0 {
		t.Error("a planted object counted as an upload")
	}
	if err := s.Delete("two", "a/b"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Object("two", "a/b"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Object after Delete: %v, want ErrNotFound", err)
	}
	if _, err := s.Keys("three"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Keys of a missing bucket: %v, want ErrNotFound", err)
	}
	_, err = c.StatObject(ctx(t), "two", "a/b", minio.StatObjectOptions{})
	if er := minio.ToErrorResponse(err); er.Code != "NoSuchKey" {
		t.Errorf("StatObject of a deleted object: %v, want NoSuchKey", err)
	}
	if err := (Config{Addr: "10.0.0.1:0"}).Validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("a non-loopback address: %v, want ErrConfig", err)
	}
}
