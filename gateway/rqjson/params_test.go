package rqjson

import (
	"errors"
	"net/url"
	"reflect"
	"testing"
	"time"
)

func TestParseParamsErrors(t *testing.T) {
	// API.md 1.2 "Validation happens before routing": exact 400 texts.
	tests := []struct {
		query string
		want  string
	}{
		{"timeout=abc", "timeout is not a valid duration"},
		{"timeout=", "timeout is not a valid duration"},
		{"timeout=10", "timeout is not a valid duration"},
		{"freshness=1x", "freshness is not a valid duration"},
		{"db_timeout=soon", "db_timeout is not a valid duration"},
		{"linearizable_timeout=-", "linearizable_timeout is not a valid duration"},
		{"retries=x", "retries is not a valid integer"},
		{"retries=1.5", "retries is not a valid integer"},
		{"retries=", "retries is not a valid integer"},
		{"trailing_logs=ten", "trailing_logs is not a valid integer"},
		{"trailing_logs=99999999999999999999", "trailing_logs is not a valid integer"},
		{"freshness_strict", "freshness_strict requires freshness"},
		{"freshness_strict&level=none", "freshness_strict requires freshness"},
		{"q=", "query parameter not set"},
		{"q", "query parameter not set"},
		// Order: durations, then integers, then freshness_strict, then q.
		{"retries=x&timeout=x", "timeout is not a valid duration"},
		{"freshness_strict&retries=x", "retries is not a valid integer"},
		{"q=&freshness_strict", "freshness_strict requires freshness"},
		{"timeout=1s&freshness=x", "freshness is not a valid duration"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			v, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			p, err := ParseParams(v)
			if err == nil {
				t.Fatalf("ParseParams(%q) = %+v, want error %q", tt.query, p, tt.want)
			}
			if rp, rerr := ParseRawQuery(tt.query); rerr == nil || rerr.Error() != err.Error() || !reflect.DeepEqual(rp, p) {
				t.Errorf("ParseRawQuery(%q) = %+v, %v; ParseParams gave %v", tt.query, rp, rerr, err)
			}
			if err.Error() != tt.want {
				t.Errorf("error text %q, want %q", err, tt.want)
			}
			if !errors.Is(err, ErrBadParam) {
				t.Errorf("errors.Is(%v, ErrBadParam) = false", err)
			}
			var pe *ParamError
			if !errors.As(err, &pe) {
				t.Errorf("error %T is not a *ParamError", err)
			}
			if !reflect.DeepEqual(p, Params{}) {
				t.Errorf("non-zero Params %+v returned with error", p)
			}
		})
	}
}

func TestParseParams(t *testing.T) {
	tests := []struct {
		name  string
		query string
		want  Params
	}{
		{name: "none", query: "", want: Params{}},
		{
			name:  "API.md 1.2 flags are presence-only: pretty=false is pretty",
			query: "pretty=false&timings=0&transaction=no",
			want:  Params{Pretty: true, Timings: true, Transaction: true},
		},
		{
			name: "API.md 1.2 every flag",
			query: "pretty&timings&transaction&associative&blob_array&qualify_columns&raft_index&queue&wait" +
				"&redirect&noleader&nonvoters&sync&vacuum&compress&norwrandom&norwtime&noparse",
			want: Params{
				Pretty: true, Timings: true, Transaction: true, Associative: true, BlobArray: true,
				QualifyColumns: true, RaftIndex: true, Queue: true, Wait: true, Redirect: true,
				NoLeader: true, NonVoters: true, Sync: true, Vacuum: true, Compress: true,
				NoRWRandom: true, NoRWTime: true, NoParse: true,
			},
		},
		{
			name:  "API.md 1.2 durations",
			query: "timeout=2s&freshness=1m30s&freshness_strict&db_timeout=100ms&linearizable_timeout=-1s",
			want: Params{
				Timeout: 2 * time.Second, Freshness: 90 * time.Second, FreshnessStrict: true,
				DBTimeout: 100 * time.Millisecond, LinearizableTimeout: -time.Second,
			},
		},
		{
			name:  "API.md 1.2 zero duration is valid (freshness ignored if 0)",
			query: "freshness=0&freshness_strict",
			want:  Params{FreshnessStrict: true},
		},
		{
			name:  "API.md 1.2 integers",
			query: "retries=3&trailing_logs=0",
			want:  Params{Retries: 3, TrailingLogs: 0, HasTrailingLogs: true},
		},
		{
			name:  "API.md 1.2 q",
			query: "q=SELECT+*+FROM+foo",
			want:  Params{Q: "SELECT * FROM foo", HasQ: true},
		},
		{
			name:  "API.md 1.2 strings and tables csv",
			query: "ver=2&key=store.leader&fmt=sql&tables=foo,+bar,,baz",
			want:  Params{Ver: "2", Key: "store.leader", Fmt: "sql", Tables: []string{"foo", "bar", "baz"}},
		},
		{
			name:  "API.md 1.2 first value wins",
			query: "fmt=sql&fmt=binary&retries=1&retries=x",
			want:  Params{Fmt: "sql", Retries: 1},
		},
		{name: "API.md 1.2 level none", query: "level=none", want: Params{Level: "none"}},
		{name: "API.md 1.2 level case-insensitive", query: "level=STRONG", want: Params{Level: "strong"}},
		{name: "API.md 1.2 level linearizable", query: "level=Linearizable", want: Params{Level: "linearizable"}},
		{name: "API.md 1.2 level auto", query: "level=auto", want: Params{Level: "auto"}},
		{name: "API.md 1.2 level weak", query: "level=weak", want: Params{Level: "weak"}},
		{name: "API.md 1.2 unknown level is weak", query: "level=bogus", want: Params{Level: "weak"}},
		{name: "API.md 1.2 empty level is weak", query: "level=", want: Params{Level: "weak"}},
		{name: "keys are case-sensitive", query: "Pretty&LEVEL=none&Q=", want: Params{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseParams(v)
			if err != nil {
				t.Fatalf("ParseParams(%q) error: %v", tt.query, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseParams(%q)\n got %+v\nwant %+v", tt.query, got, tt.want)
			}
			if raw, err := ParseRawQuery(tt.query); err != nil || !reflect.DeepEqual(raw, tt.want) {
				t.Errorf("ParseRawQuery(%q)\n got %+v, %v\nwant %+v", tt.query, raw, err, tt.want)
			}
		})
	}
}
