package ingest

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ingest.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseConfig(t *testing.T) {
	creds := writeFile(t, "creds")
	cases := []struct {
		name    string
		arg     string // a JSON body when it starts with '{'
		wantErr string // a substring of the error, naming the key
		check   func(t *testing.T, c Config)
	}{
		{name: "bare URL: defaults", arg: "nats://127.0.0.1:4222/sql.in", check: func(t *testing.T, c Config) {
			if c.URL != "nats://127.0.0.1:4222" || c.Subject != "sql.in" || c.Stream != "" || c.Durable != "skiff" ||
				c.MaxInFlight != DefaultMaxInFlight || c.MaxDeliveries != DefaultMaxDeliveries || c.AckWait != DefaultAckWait ||
				c.DeadLetterSubject != "" {
				t.Fatalf("cfg = %+v", c)
			}
		}},
		{name: "bare URL with a wildcard subject and credentials in the URL", arg: "nats://u:p@h:4222/sql.>", check: func(t *testing.T, c Config) {
			if c.URL != "nats://u:p@h:4222" || c.Subject != "sql.>" {
				t.Fatalf("cfg = %+v", c)
			}
			if got := redact(c.URL); strings.Contains(got, "p@") {
				t.Fatalf("redact = %q", got)
			}
		}},
		{name: "bare URL without subject", arg: "nats://h:4222", wantErr: "no subject"},
		{name: "bare URL without subject, slash", arg: "nats://h:4222/", wantErr: "no subject"},
		{name: "wrong scheme", arg: "http://h:4222/s", wantErr: "scheme"},
		{name: "no host", arg: "nats:///s", wantErr: "no host"},
		{name: "bad subject", arg: "nats://h:4222/a..b", wantErr: "subject"},
		{name: "misplaced wildcard", arg: "nats://h:4222/a.>.b", wantErr: "subject"},
		{name: "query refused", arg: "nats://h:4222/s?x=1", wantErr: "query"},
		{name: "empty", arg: " ", wantErr: "empty"},
		{name: "missing file", arg: "/no/such/ingest.json", wantErr: "no such file"},
		{name: "JSON: every key", arg: `{"url":"nats://a:1,nats://b:2","subject":"sql.in","stream":"SQL","durable":"d1",
			"credentials_file":"` + creds + `","max_in_flight":8,"dead_letter_subject":"sql.dead","max_deliveries":3,"ack_wait":"10s",
			"nak_delay":"50ms","max_nak_delay":"2s","fetch_wait":"250ms","reconnect_wait":"3s","shutdown_grace":"4s"}`,
			check: func(t *testing.T, c Config) {
				want := Config{URL: "nats://a:1,nats://b:2", Subject: "sql.in", Stream: "SQL", Durable: "d1", CredentialsFile: creds,
					MaxInFlight: 8, DeadLetterSubject: "sql.dead", MaxDeliveries: 3, AckWait: 10 * time.Second, NakDelay: 50 * time.Millisecond,
					MaxNakDelay: 2 * time.Second, FetchWait: 250 * time.Millisecond, ReconnectWait: 3 * time.Second, ShutdownGrace: 4 * time.Second}
				if !reflect.DeepEqual(c, want) {
					t.Fatalf("cfg = %+v\nwant  %+v", c, want)
				}
			}},
		{name: "JSON: subject in the URL", arg: `{"url":"nats://a:1/sql.in"}`, check: func(t *testing.T, c Config) {
			if c.URL != "nats://a:1" || c.Subject != "sql.in" || c.Durable != "skiff" {
				t.Fatalf("cfg = %+v", c)
			}
		}},
		{name: "JSON: two subjects disagree", arg: `{"url":"nats://a:1/x","subject":"y"}`, wantErr: "differs"},
		{name: "JSON: unknown key", arg: `{"url":"nats://a:1/x","max_inflight":3}`, wantErr: `unknown field "max_inflight"`},
		{name: "JSON: wrong type names the key", arg: `{"url":"nats://a:1/x","max_in_flight":"many"}`, wantErr: "max_in_flight"},
		{name: "JSON: bad duration names the key", arg: `{"url":"nats://a:1/x","ack_wait":"soon"}`, wantErr: "ack_wait"},
		{name: "JSON: number is not a duration", arg: `{"url":"nats://a:1/x","ack_wait":30}`, wantErr: "ack_wait"},
		{name: "JSON: ack wait too short", arg: `{"url":"nats://a:1/x","ack_wait":"100ms"}`, wantErr: "ack_wait"},
		{name: "JSON: negative max_in_flight", arg: `{"url":"nats://a:1/x","max_in_flight":-1}`, wantErr: "max_in_flight"},
		{name: "JSON: negative max_deliveries", arg: `{"url":"nats://a:1/x","max_deliveries":-2}`, wantErr: "max_deliveries"},
		{name: "JSON: no URL", arg: `{"subject":"x"}`, wantErr: "url: required"},
		{name: "JSON: no subject", arg: `{"url":"nats://a:1"}`, wantErr: "subject: required"},
		{name: "JSON: dead letters consumed again", arg: `{"url":"nats://a:1/sql.>","dead_letter_subject":"sql.dead"}`, wantErr: "dead_letter_subject"},
		{name: "JSON: dead-letter subject with wildcard", arg: `{"url":"nats://a:1/sql.in","dead_letter_subject":"dead.*"}`, wantErr: "dead_letter_subject"},
		{name: "JSON: bad stream name", arg: `{"url":"nats://a:1/x","stream":"a.b"}`, wantErr: "stream"},
		{name: "JSON: bad durable name", arg: `{"url":"nats://a:1/x","durable":"a b"}`, wantErr: "durable"},
		{name: "JSON: missing credentials file", arg: `{"url":"nats://a:1/x","credentials_file":"/no/such.creds"}`, wantErr: "credentials_file"},
		{name: "JSON: max_nak_delay below nak_delay", arg: `{"url":"nats://a:1/x","nak_delay":"3s","max_nak_delay":"1s"}`, wantErr: "max_nak_delay"},
		{name: "JSON: trailing value", arg: `{"url":"nats://a:1/x"} {}`, wantErr: "more than one"},
		{name: "JSON: not an object", arg: `{"url":`, wantErr: "invalid ingest config"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			arg := tc.arg
			if strings.HasPrefix(arg, "{") {
				arg = writeFile(t, arg)
			}
			c, err := ParseConfig(arg)
			if tc.wantErr != "" {
				if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want ErrInvalidConfig mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestSubjectMatches(t *testing.T) {
	for _, tc := range []struct {
		filter, s string
		want      bool
	}{
		{"a.b", "a.b", true}, {"a.b", "a.c", false}, {"a.*", "a.b", true}, {"a.*", "a.b.c", false},
		{"a.>", "a.b.c", true}, {"a.>", "a", false}, {">", "x", true}, {"*.b", "a.b", true}, {"a.b", "a.b.c", false},
	} {
		if got := subjectMatches(tc.filter, tc.s); got != tc.want {
			t.Errorf("subjectMatches(%q, %q) = %v", tc.filter, tc.s, got)
		}
	}
}

func TestRequestIDStable(t *testing.T) {
	created := time.Unix(1700000000, 0)
	a := requestID("S", created, "m-1", 7)
	if string(a) != string(requestID("S", created, "m-1", 9)) {
		t.Fatal("a Nats-Msg-Id's request ID depends on the sequence")
	}
	if string(a) == string(requestID("T", created, "m-1", 7)) || string(a) == string(requestID("S", created, "m-2", 7)) {
		t.Fatal("request IDs of different messages collide")
	}
	s7, s8 := requestID("S", created, "", 7), requestID("S", created, "", 8)
	if string(s7) != string(requestID("S", created, "", 7)) || string(s7) == string(s8) || string(s7) >= string(s8) {
		t.Fatal("sequence request IDs are not stable and ascending")
	}
	if string(s7) == string(requestID("S", created.Add(time.Second), "", 7)) {
		t.Fatal("a recreated stream's sequence 7 has the old stream's request ID")
	}
	if len(a) != 16 || len(s7) != 16 || a[0] == s7[0] {
		t.Fatal("request ID forms overlap")
	}
}
