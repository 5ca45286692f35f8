package backup

import (
	"sync"
	"sync/atomic"
	"time"
)

// Counter names, rqlite's (auto/backup's expvar map "uploader").
const (
	KeyUploadsOK        = "num_uploads_ok"
	KeyUploadsFail      = "num_uploads_fail"
	KeyUploadsSkipped   = "num_uploads_skipped"
	KeyUploadsSkippedID = "num_uploads_skipped_id"
	KeySumGetFail       = "num_sum_get_fail"
	KeyTotalUploadBytes = "total_upload_bytes"
	KeyLastUploadBytes  = "last_upload_bytes"
)

// Skiff's additions, in both sections.
const (
	KeyLastUploadTime     = "last_upload_time"
	KeyLastUploadDuration = "last_upload_duration"
	KeyLastError          = "last_error"
	KeyLastErrorTime      = "last_error_time"
)

// Section names: /status and /debug/vars.
const (
	StatusSection = "auto_backups"
	VarsSection   = "uploader"
)

// stats are the uploader's published counters: read by /status from any
// goroutine, written by the uploader's.
type stats struct {
	ok, fail, skipped, skippedID, sumGetFail atomic.Int64
	totalBytes, lastBytes                    atomic.Int64
	mu                                       sync.Mutex
	lastUpload                               time.Time
	lastDuration                             time.Duration
	lastIndex                                uint64
	lastSum                                  string
	lastErr                                  string
	lastErrTime                              time.Time
}

func (s *stats) uploaded(bytes int64, d time.Duration, at time.Time, index uint64, sum string) {
	s.ok.Add(1)
	s.totalBytes.Add(bytes)
	s.lastBytes.Store(bytes)
	s.mu.Lock()
	s.lastUpload, s.lastDuration, s.lastIndex, s.lastSum = at, d, index, sum
	s.lastErr = ""
	s.mu.Unlock()
}

func (s *stats) failed(err error, at time.Time) {
	s.mu.Lock()
	s.lastErr, s.lastErrTime = err.Error(), at
	s.mu.Unlock()
}

func (s *stats) current(index uint64, sum string) {
	s.mu.Lock()
	s.lastIndex, s.lastSum = index, sum
	s.mu.Unlock()
}

// counters is rqlite's expvar map plus the last upload and error.
func (s *stats) counters() map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]any{
		KeyUploadsOK:          s.ok.Load(),
		KeyUploadsFail:        s.fail.Load(),
		KeyUploadsSkipped:     s.skipped.Load(),
		KeyUploadsSkippedID:   s.skippedID.Load(),
		KeySumGetFail:         s.sumGetFail.Load(),
		KeyTotalUploadBytes:   s.totalBytes.Load(),
		KeyLastUploadBytes:    s.lastBytes.Load(),
		KeyLastUploadTime:     "",
		KeyLastUploadDuration: s.lastDuration.String(),
		KeyLastError:          s.lastErr,
		KeyLastErrorTime:      "",
	}
	if !s.lastUpload.IsZero() {
		m[KeyLastUploadTime] = s.lastUpload.UTC().Format(time.RFC3339)
	}
	if !s.lastErrTime.IsZero() {
		m[KeyLastErrorTime] = s.lastErrTime.UTC().Format(time.RFC3339)
	}
	return m
}
