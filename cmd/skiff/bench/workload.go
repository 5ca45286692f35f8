package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
)

// request is one HTTP request of a workload.
type request struct {
	path  string // with query string
	body  []byte
	stmts int
}

// workload makes the requests of one worker. It is not safe for concurrent
// use: each worker has its own (with its own random source).
type workload struct {
	cfg   Config
	rng   *rand.Rand
	value string
	sql   []string
	next  int
}

func newWorkload(cfg Config, seed uint64, sql []string) *workload {
	return &workload{cfg: cfg, rng: rand.New(rand.NewPCG(seed, 0x5eed)), value: strings.Repeat("v", cfg.ValueSize), sql: sql, next: int(seed)}
}

// loadSQL reads the sql workload's statements: one per line, blank lines
// and lines starting with -- skipped.
func loadSQL(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "--") {
			continue
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s holds no statement", ErrInvalidConfig, path)
	}
	return out, nil
}

func (w *workload) writeQuery() string {
	var flags []string
	if w.cfg.Tx {
		flags = append(flags, "transaction")
	}
	if w.cfg.Queued {
		flags = append(flags, "queue")
	}
	if len(flags) == 0 {
		return ""
	}
	return "?" + strings.Join(flags, "&")
}

func (w *workload) insertStmt() []any {
	return []any{"INSERT INTO " + w.cfg.Table + " (v) VALUES (?)", w.value}
}

func (w *workload) writes(n int) request {
	stmts := make([][]any, n)
	for i := range stmts {
		stmts[i] = w.insertStmt()
	}
	b, _ := json.Marshal(stmts)
	return request{path: "/db/execute" + w.writeQuery(), body: b, stmts: n}
}

func (w *workload) pointRead() request {
	id := 1 + w.rng.IntN(max(1, w.cfg.Preload))
	b, _ := json.Marshal([][]any{{"SELECT id, v FROM " + w.cfg.Table + " WHERE id = ?", id}})
	return request{path: "/db/query?level=" + url.QueryEscape(w.cfg.Level), body: b, stmts: 1}
}

// nextRequest returns the worker's next request.
func (w *workload) nextRequest() request {
	switch w.cfg.Workload {
	case WorkloadBatch:
		return w.writes(w.cfg.Batch)
	case WorkloadRead:
		return w.pointRead()
	case WorkloadMixed:
		if w.rng.Float64() < w.cfg.ReadFraction {
			return w.pointRead()
		}
		return w.writes(1)
	case WorkloadSQL:
		s := w.sql[w.next%len(w.sql)]
		w.next++
		b, _ := json.Marshal([]string{s})
		return request{path: "/db/request?level=" + url.QueryEscape(w.cfg.Level), body: b, stmts: 1}
	}
	return w.writes(1)
}

// setupStatements create the table and preload rows, in batches.
func setupStatements(cfg Config) [][]byte {
	var out [][]byte
	b, _ := json.Marshal([]string{"CREATE TABLE IF NOT EXISTS " + cfg.Table + " (id INTEGER PRIMARY KEY, v TEXT)"})
	out = append(out, b)
	value := strings.Repeat("v", cfg.ValueSize)
	for left := cfg.Preload; left > 0; {
		n := min(left, 500)
		stmts := make([][]any, n)
		for i := range stmts {
			stmts[i] = []any{"INSERT INTO " + cfg.Table + " (v) VALUES (?)", value}
		}
		b, _ := json.Marshal(stmts)
		out = append(out, b)
		left -= n
	}
	return out
}
