package bench

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"defaults", func(*Config) {}, true},
		{"read needs preload", func(c *Config) { c.Workload = WorkloadRead }, false},
		{"read with preload", func(c *Config) { c.Workload, c.Preload = WorkloadRead, 10 }, true},
		{"sql needs a file", func(c *Config) { c.Workload = WorkloadSQL }, false},
		{"unknown workload", func(c *Config) { c.Workload = "x" }, false},
		{"bad level", func(c *Config) { c.Level = "eventual" }, false},
		{"negative rate", func(c *Config) { c.Rate = -1 }, false},
		{"read fraction", func(c *Config) { c.ReadFraction = 2 }, false},
		{"table injection", func(c *Config) { c.Table = "t; DROP TABLE x" }, false},
	} {
		c := Config{}.WithDefaults()
		tc.mod(&c)
		if err := c.Validate(); (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalidConfig)) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

// Each workload makes the requests it says, with rqlite's body forms.
func TestWorkloadRequests(t *testing.T) {
	base := Config{Preload: 5, ValueSize: 3, Level: "linearizable"}.WithDefaults()
	for _, tc := range []struct {
		mod        func(*Config)
		path       string
		stmts      int
		bodyPrefix string
	}{
		{func(*Config) {}, "/db/execute", 1, `[["INSERT INTO bench (v) VALUES (?)","vvv"]]`},
		{func(c *Config) { c.Tx, c.Queued = true, true }, "/db/execute?transaction&queue", 1, `[["INSERT`},
		{func(c *Config) { c.Workload, c.Batch = WorkloadBatch, 3 }, "/db/execute", 3, `[["INSERT INTO bench (v) VALUES (?)","vvv"],["INSERT`},
		{func(c *Config) { c.Workload = WorkloadRead }, "/db/query?level=linearizable", 1, `[["SELECT id, v FROM bench WHERE id = ?",`},
	} {
		c := base
		tc.mod(&c)
		r := newWorkload(c, 1, nil).nextRequest()
		if r.path != tc.path || r.stmts != tc.stmts || !strings.HasPrefix(string(r.body), tc.bodyPrefix) {
			t.Errorf("%+v: got %s %d %s", c.Workload, r.path, r.stmts, r.body)
		}
		var v any
		if err := json.Unmarshal(r.body, &v); err != nil {
			t.Errorf("body is not JSON: %s", r.body)
		}
	}
	// Point reads stay within the preloaded ids; the mixed workload mixes.
	c := base
	c.Workload, c.ReadFraction = WorkloadMixed, 0.5
	w := newWorkload(c, 7, nil)
	reads := 0
	for range 1000 {
		r := w.nextRequest()
		if strings.HasPrefix(r.path, "/db/query") {
			reads++
			var body [][]any
			_ = json.Unmarshal(r.body, &body)
			if id := body[0][1].(float64); id < 1 || id > 5 {
				t.Fatalf("read id %v outside the preloaded rows", id)
			}
		}
	}
	if reads < 400 || reads > 600 {
		t.Fatalf("mixed 0.5 gave %d reads of 1000", reads)
	}
	// sql cycles through the file's statements.
	w = newWorkload(Config{Workload: WorkloadSQL}.WithDefaults(), 0, []string{"SELECT 1", "SELECT 2"})
	if a, b, c := w.nextRequest(), w.nextRequest(), w.nextRequest(); string(a.body) != `["SELECT 1"]` || string(b.body) != `["SELECT 2"]` || string(c.body) != `["SELECT 1"]` {
		t.Fatalf("sql order: %s %s %s", a.body, b.body, c.body)
	}
	if n := len(setupStatements(Config{Preload: 1200}.WithDefaults())); n != 1+3 {
		t.Fatalf("setup: %d requests for 1200 rows, want create + 3 batches", n)
	}
}

// Per-worker histograms merge into the run's percentiles.
func TestHistogramMerge(t *testing.T) {
	a, b := newHist(), newHist()
	for i := int64(1); i <= 900; i++ {
		_ = a.RecordValue(1000) // 1 ms
	}
	for i := int64(1); i <= 100; i++ {
		_ = b.RecordValue(50000) // 50 ms
	}
	a.Merge(b)
	l := summarize(a)
	if l.P50 < 0.99 || l.P50 > 1.01 || l.P99 < 49.9 || l.P99 > 50.1 || l.Max < 49.9 || l.Max > 50.1 {
		t.Fatalf("summary %+v", l)
	}
}

// Open loop: intended send times are start + i/rate whatever the reader
// does, so a slow reader sees times in the past (its latency then counts
// the wait).
func TestScheduleIntendedTimes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	ticks := schedule(ctx, start, 1000, 4)
	var got []time.Time
	for i := 0; i < 50; i++ {
		if i == 10 {
			time.Sleep(30 * time.Millisecond) // a stalled reader
		}
		got = append(got, <-ticks)
	}
	for i, at := range got {
		if want := start.Add(time.Duration(i) * time.Millisecond); !at.Equal(want) {
			t.Fatalf("tick %d at %v, want %v", i, at.Sub(start), want.Sub(start))
		}
	}
	cancel()
	for range ticks { // closes once ctx ends
	}
}
