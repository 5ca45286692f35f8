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
func ParseParams(v url.Values) (Params, error) {
	var p Params
	has := func(k string) bool { _, ok := v[k]; return ok }

	durations := [...]struct {
		key string
		dst *time.Duration
	}{
		{"timeout", &p.Timeout},
		{"freshness", &p.Freshness},
		{"db_timeout", &p.DBTimeout},
		{"linearizable_timeout", &p.LinearizableTimeout},
	}
	for _, d := range durations {
		if !has(d.key) {
			continue
		}
		dur, err := time.ParseDuration(v.Get(d.key))
		if err != nil {
			return Params{}, &ParamError{msg: d.key + " is not a valid duration"}
		}
		*d.dst = dur
	}

	ints := [...]struct {
		key string
		dst *int
	}{
		{"retries", &p.Retries},
		{"trailing_logs", &p.TrailingLogs},
	}
	for _, n := range ints {
		if !has(n.key) {
			continue
		}
		i, err := strconv.Atoi(v.Get(n.key))
		if err != nil {
			return Params{}, &ParamError{msg: n.key + " is not a valid integer"}
		}
		*n.dst = i
	}
	p.HasTrailingLogs = has("trailing_logs")

	p.FreshnessStrict = has("freshness_strict")
	if p.FreshnessStrict && !has("freshness") {
		return Params{}, &ParamError{msg: "freshness_strict requires freshness"}
	}

	p.HasQ = has("q")
	p.Q = v.Get("q")
	if p.HasQ && p.Q == "" {
		return Params{}, &ParamError{msg: "query parameter not set"}
	}

	if has("level") {
		p.Level = strings.ToLower(v.Get("level"))
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
	p.Ver = v.Get("ver")
	p.Key = v.Get("key")
	p.Fmt = v.Get("fmt")
	if has("tables") {
		for _, t := range strings.Split(v.Get("tables"), ",") {
			if t = strings.TrimSpace(t); t != "" {
				p.Tables = append(p.Tables, t)
			}
		}
	}
	return p, nil
}
