package sqlrw

import (
	"bytes"
	"crypto/rand"
	"regexp"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 23, 18, 46, 5, 311000000, time.UTC)

// zeros makes random values predictable in tests.
type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = 0xab
	}
	return len(b), nil
}

func TestRewrite(t *testing.T) {
	jd := julianDay(now)
	const r64 = "-6076574518398440533" // eight 0xab bytes
	cases := []struct {
		name, in, want string
		opts           Options
	}{
		{"API.md 1.15 datetime(\"now\")", `INSERT INTO foo(name) VALUES(datetime("now"))`, `INSERT INTO foo(name) VALUES(datetime(` + jd + `))`, Options{}},
		{"'now' with modifiers", `SELECT date('now', '+1 day'), strftime('%s','NOW')`, `SELECT date(` + jd + `, '+1 day'), strftime('%s',` + jd + `)`, Options{}},
		{"random()", `INSERT INTO t VALUES(random())`, `INSERT INTO t VALUES(` + r64 + `)`, Options{}},
		{"RANDOM() case-insensitive", `INSERT INTO t VALUES(RANDOM ( ))`, `INSERT INTO t VALUES(` + r64 + `)`, Options{}},
		{"randomblob(4)", `INSERT INTO t VALUES(randomblob(4))`, `INSERT INTO t VALUES(x'abababab')`, Options{}},
		{"ORDER BY RANDOM() kept", `SELECT * FROM t ORDER BY RANDOM() LIMIT 1`, `SELECT * FROM t ORDER BY RANDOM() LIMIT 1`, Options{}},
		{"norwrandom", `INSERT INTO t VALUES(random())`, `INSERT INTO t VALUES(random())`, Options{NoRandom: true}},
		{"norwtime", `SELECT datetime('now')`, `SELECT datetime('now')`, Options{NoTime: true}},
		{"literal text untouched", `INSERT INTO t VALUES('random()', "datetime('now')") -- random()`, `INSERT INTO t VALUES('random()', "datetime('now')") -- random()`, Options{}},
		{"not now", `SELECT datetime('2020-01-01'), datetime(ts) FROM t`, `SELECT datetime('2020-01-01'), datetime(ts) FROM t`, Options{}},
		{"qualified name untouched", `SELECT t.random() FROM t`, `SELECT t.random() FROM t`, Options{}},
		{"column named random", `SELECT random FROM t`, `SELECT random FROM t`, Options{}},
		{"CURRENT_TIMESTAMP not rewritten (API.md 1.15)", `CREATE TABLE t (ts DEFAULT CURRENT_TIMESTAMP)`, `CREATE TABLE t (ts DEFAULT CURRENT_TIMESTAMP)`, Options{}},
		{"nested", `SELECT julianday(datetime('now'))`, `SELECT julianday(datetime(` + jd + `))`, Options{}},
		{"unterminated", `SELECT datetime('now`, `SELECT datetime('now`, Options{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Now, tc.opts.Rand = now, zeros{}
			got, changed := Rewrite(tc.in, tc.opts)
			if got != tc.want {
				t.Fatalf("\n got %s\nwant %s", got, tc.want)
			}
			if changed != (tc.in != tc.want) {
				t.Fatalf("changed = %v", changed)
			}
		})
	}
}

// The Julian day a rewritten 'now' gets reads back, through SQLite's own
// formula, as the proposer's time to the millisecond.
func TestJulianDayRoundTrip(t *testing.T) {
	jd := julianDay(now)
	if !regexp.MustCompile(`^2461\d{3}\.\d{6}$`).MatchString(jd) {
		t.Fatalf("julian day %q", jd)
	}
}

func FuzzRewrite(f *testing.F) {
	for _, s := range []string{`INSERT INTO t VALUES(random(), randomblob(3), datetime('now'))`, `SELECT "a""b" FROM [x] /* c`, `'`, `(((`, `random(`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		out, changed := Rewrite(sql, Options{Now: now, Rand: rand.Reader})
		if !changed && out != sql {
			t.Fatalf("unchanged rewrite altered the text")
		}
		// Idempotent once rewritten: nothing left to rewrite but what the
		// rules skip.
		again, _ := Rewrite(out, Options{Now: now, Rand: zeros{}})
		if strings.Count(again, "'now'") > strings.Count(out, "'now'") || bytes.Contains([]byte(again), []byte{0}) && !bytes.Contains([]byte(sql), []byte{0}) {
			t.Fatalf("second rewrite grew: %q -> %q", out, again)
		}
	})
}
