package gateway

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/skiffdb/skiff/actors/lifecycle"
	"github.com/skiffdb/skiff/actors/replica"
	"github.com/skiffdb/skiff/sm/cmdpb"
	"github.com/skiffdb/skiff/test/testdb"
)

// loadData records how a binary load reached the replica: streamed to Boot
// or proposed as a dump.
type loadData struct {
	fakeData
	bootErr error
	mu      sync.Mutex
	booted  []byte
	execs   []*cmdpb.Request
}

func (d *loadData) Boot(_ context.Context, r io.Reader) error {
	if d.bootErr != nil {
		return d.bootErr
	}
	b, err := io.ReadAll(r)
	d.mu.Lock()
	d.booted = b
	d.mu.Unlock()
	return err
}

func (d *loadData) Execute(ctx context.Context, req *cmdpb.Request) (*cmdpb.Response, error) {
	d.mu.Lock()
	d.execs = append(d.execs, req)
	d.mu.Unlock()
	return &cmdpb.Response{Results: []*cmdpb.StatementResult{{}}}, nil
}

// A SQLite file sent to /db/load streams to Boot whole (a single-voter
// cluster); a cluster that refuses the boot before reading gets the file
// as a dump through the log instead; a SQL text body never goes to Boot.
func TestLoadStreamsBinaryToBootElseDumps(t *testing.T) {
	file := testdb.File(t, "a", "b")
	cases := []struct {
		name     string
		bootErr  error
		body     []byte
		booted   bool
		replace  bool
		status   int
		response string
	}{
		{"single voter", nil, file, true, false, http.StatusOK, `{"results":[]}`},
		{"several voters", replica.ErrNotSingleNode, file, false, true, http.StatusOK, `{"results":[]}`},
		{"boot fails", replica.ErrNotReady, file, false, false, http.StatusServiceUnavailable, ""},
		{"sql text", nil, []byte("CREATE TABLE x (y)"), false, false, http.StatusOK, `{"results":[{}]}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := &loadData{bootErr: tc.bootErr}
			p := &phases{}
			p.set(lifecycle.Ready, 1)
			base := startGateway(t, d, p)
			r := do(t, http.MethodPost, base+"/db/load", string(tc.body))
			if r.status != tc.status || (tc.response != "" && r.body != tc.response) {
				t.Fatalf("answer %d %q, want %d %q", r.status, r.body, tc.status, tc.response)
			}
			d.mu.Lock()
			defer d.mu.Unlock()
			if got := bytes.Equal(d.booted, tc.body); got != tc.booted {
				t.Fatalf("booted %d bytes, want the whole body: %v", len(d.booted), tc.booted)
			}
			replaced := len(d.execs) == 1 && d.execs[0].GetReplaceAll()
			if replaced != tc.replace {
				t.Fatalf("proposed %v, want a replacing dump: %v", d.execs, tc.replace)
			}
		})
	}
}
