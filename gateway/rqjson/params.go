package rqjson

import (
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Params holds the query parameters of API.md 1.2. Flags are presence-only:
// "?pretty=false" still sets Pretty. Durations and integers are zero when
// absent, so callers apply the documented defaults themselves.
type Params struct {
	Pretty          bool
	Timings         bool
	Transaction     bool
	Level           string // lower-cased none|weak|linearizable|strong|auto; "" if absent
	Freshness       time.Duration
	FreshnessStrict bool

	LinearizableTimeout time.Duration
	Associative         bool
	BlobArray           bool
	QualifyColumns      bool
	RaftIndex           bool
	Queue               bool
	Wait                bool
	Timeout             time.Duration
	Retries             int
	DBTimeout           time.Duration
	Redirect            bool
	NoLeader            bool
	NonVoters           bool
	Ver                 string
	Sync                bool
	Key                 string
	Fmt                 string
	Tables              []string
	Vacuum              bool
	Compress            bool
	TrailingLogs        int
	HasTrailingLogs     bool
	NoRWRandom          bool
	NoRWTime            bool
	NoParse             bool
	Q                   string
	HasQ                bool
}

// ParseParams validates and decodes query parameters. Validation order and
// messages follow API.md 1.2; every error satisfies errors.Is(err,
// ErrBadParam) and its text is rqlite's exact 400 body.
func ParseParams(v url.Values) (Params, error) { return parseParams(&rawQuery{vals: v}) }

// ParseRawQuery is ParseParams(url.ParseQuery(raw)), what r.URL.Query()
// gives, without building the map for the common query: a few pairs with
// nothing to unescape (every data request parses one).
func ParseRawQuery(raw string) (Params, error) {
	var q rawQuery
	if !q.split(raw) {
		v, _ := url.ParseQuery(raw) // r.URL.Query() drops malformed pairs too
		q.vals = v
	}
	return parseParams(&q)
}

// maxQuickPairs bounds the pairs split without a map; longer queries, and
// any with escapes, take url.ParseQuery.
const maxQuickPairs = 12

// rawQuery answers parseParams' lookups from url.Values, or from pairs split
// as sent.
type rawQuery struct {
	vals  url.Values
	pairs [maxQuickPairs]struct{ k, v string }
	n     int
}

// split splits raw into pairs as url.ParseQuery would, unless raw has
// something to unescape, a semicolon (which ParseQuery refuses) or too many
// pairs; it then reports false.
func (q *rawQuery) split(raw string) bool {
	if strings.ContainsAny(raw, "%+;") {
		return false
	}
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" {
			continue
		}
		if q.n == maxQuickPairs {
			return false
		}
		q.pairs[q.n].k, q.pairs[q.n].v, _ = strings.Cut(pair, "=")
		q.n++
	}
	return true
}

func (q *rawQuery) has(k string) bool {
	if q.vals != nil {
		_, ok := q.vals[k]
		return ok
	}
	for i := range q.n {
		if q.pairs[i].k == k {
			return true
		}
	}
	return false
}

// get returns k's first value, as url.Values.Get does.
func (q *rawQuery) get(k string) string {
	if q.vals != nil {
		return q.vals.Get(k)
	}
	for i := range q.n {
		if q.pairs[i].k == k {
			return q.pairs[i].v
		}
	}
	return ""
}

func parseParams(v *rawQuery) (Params, error) {
	var p Params
	has := v.has

	// Keys in validation order; fields set by name, not through pointers
	// into p, which would move p to the heap on every request.
	for _, key := range [...]string{"timeout", "freshness", "db_timeout", "linearizable_timeout"} {
		if !has(key) {
			continue
		}
		dur, err := time.ParseDuration(v.get(key))
		if err != nil {
			return Params{}, &ParamError{msg: key + " is not a valid duration"}
		}
		switch key {
		case "timeout":
			p.Timeout = dur
		case "freshness":
			p.Freshness = dur
		case "db_timeout":
			p.DBTimeout = dur
		default:
			p.LinearizableTimeout = dur
		}
	}
	for _, key := range [...]string{"retries", "trailing_logs"} {
		if !has(key) {
			continue
		}
		i, err := strconv.Atoi(v.get(key))
		if err != nil {
			return Params{}, &ParamError{msg: key + " is not a valid integer"}
		}
		if key == "retries" {
			p.Retries = i
		} else {
			p.TrailingLogs = i
		}
	}
	p.HasTrailingLogs = has("trailing_logs")

	p.FreshnessStrict = has("freshness_strict")
	if p.FreshnessStrict && !has("freshness") {
		return Params{}, &ParamError{msg: "freshness_strict requires freshness"}
	}

	p.HasQ = has("q")
	p.Q = v.get("q")
	if p.HasQ && p.Q == "" {
		return Params{}, &ParamError{msg: "query parameter not set"}
	}

	if has("level") {
		p.Level = strings.ToLower(v.get("level"))
		switch p.Level {
		case "none", "weak", "linearizable", "strong", "auto":
		default:
			p.Level = "weak" // rqlite maps unknown levels to weak, not to an error
		}
	}

	p.Pretty = has("pretty")
	p.Timings = has("timings")
	p.Transaction = has("transaction")
	p.Associative = has("associative")
	p.BlobArray = has("blob_array")
	p.QualifyColumns = has("qualify_columns")
	p.RaftIndex = has("raft_index")
	p.Queue = has("queue")
	p.Wait = has("wait")
	p.Redirect = has("redirect")
	p.NoLeader = has("noleader")
	p.NonVoters = has("nonvoters")
	p.Sync = has("sync")
	p.Vacuum = has("vacuum")
	p.Compress = has("compress")
	p.NoRWRandom = has("norwrandom")
	p.NoRWTime = has("norwtime")
	p.NoParse = has("noparse")
	p.Ver = v.get("ver")
	p.Key = v.get("key")
	p.Fmt = v.get("fmt")
	if has("tables") {
		for _, t := range strings.Split(v.get("tables"), ",") {
			if t = strings.TrimSpace(t); t != "" {
				p.Tables = append(p.Tables, t)
			}
		}
	}
	return p, nil
}
