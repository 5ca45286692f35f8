package gateway

import (
	"bytes"
	"net"
	"net/http"
	"testing"

	"github.com/skiffdb/skiff/actors/lifecycle"
	"github.com/skiffdb/skiff/actors/queue"
	"github.com/skiffdb/skiff/gateway/metrics"
)

// BenchmarkGatewayRequest measures the gateway's own cost of a data
// request, from ServeHTTP to the encoded answer, with the replica faked
// and net/http's server left out. Allocations per request are the figure
// to watch: on the shared benchmark machine they are exact where
// throughput is noisy. metrics=on adds the HTTP instrument (route, code,
// latency histogram) that /metrics serves; metrics=off is -metrics=false.
func BenchmarkGatewayRequest(b *testing.B) {
	for _, bc := range []struct {
		name, url, body string
		metrics         bool
	}{
		{"point-read/metrics=off", "/db/query?level=none", `[["SELECT * FROM bench WHERE id = ?", 42]]`, false},
		{"point-read/metrics=on", "/db/query?level=none", `[["SELECT * FROM bench WHERE id = ?", 42]]`, true},
		{"insert/metrics=off", "/db/execute", `[["INSERT INTO bench(v) VALUES(?)", "0123456789abcdef"]]`, false},
		{"insert/metrics=on", "/db/execute", `[["INSERT INTO bench(v) VALUES(?)", "0123456789abcdef"]]`, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			data := &fakeData{}
			q, err := queue.New(queue.Config{}, data)
			if err != nil {
				b.Fatal(err)
			}
			var p phases
			p.set(lifecycle.Ready, 1)
			cfg := Config{AdvAddr: ln.Addr().String()}
			if bc.metrics {
				if cfg.Metrics, err = metrics.New(metrics.Config{State: p.st.Load}); err != nil {
					b.Fatal(err)
				}
			}
			g, err := New(cfg, ln, data, q, p.st.Load)
			if err != nil {
				b.Fatal(err)
			}
			body := []byte(bc.body)
			w := &benchWriter{h: http.Header{}}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				r, _ := http.NewRequest(http.MethodPost, bc.url, bytes.NewReader(body))
				r.Header.Set("Content-Type", "application/json")
				w.reset()
				g.ServeHTTP(w, r)
				if w.code != http.StatusOK {
					b.Fatalf("status %d: %s", w.code, w.body.String())
				}
			}
		})
	}
}

// benchWriter is a ResponseWriter reused across requests, so that the
// benchmark counts the gateway's allocations and not a recorder's.
type benchWriter struct {
	h    http.Header
	code int
	body bytes.Buffer
}

func (w *benchWriter) Header() http.Header { return w.h }

func (w *benchWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *benchWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}

func (w *benchWriter) reset() {
	clear(w.h)
	w.code = 0
	w.body.Reset()
}
