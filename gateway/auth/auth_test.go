package auth

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/skiffdb/skiff/gateway/filewatch"
)

const testCreds = `[
  {"username": "bob",  "password": "secret1", "perms": ["all"]},
  {"username": "mary", "password": "secret2", "perms": ["query", "backup", "join"]},
  {"username": "rr",   "password": "x",       "perms": ["join-read-replica"]},
  {"username": "*",                           "perms": ["status", "ready", "join-read-only"]}
]`

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

func openTest(t *testing.T, body string) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "auth.json")
	writeFile(t, path, body)
	s, err := Open(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	return s, path
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		wantErr    bool
	}{
		{name: "example", body: testCreds},
		{name: "empty array", body: `[]`},
		{name: "every perm", body: `[{"username":"u","password":"p","perms":["all","execute","query","status","ready","backup","load","snapshot","remove","join","join-read-only","join-read-replica","leader-ops","ui"]}]`},
		{name: "unknown perm", body: `[{"username":"u","password":"p","perms":["superuser"]}]`, wantErr: true},
		{name: "perm case matters", body: `[{"username":"u","password":"p","perms":["ALL"]}]`, wantErr: true},
		{name: "no username", body: `[{"password":"p","perms":["all"]}]`, wantErr: true},
		{name: "duplicate user", body: `[{"username":"u","perms":[]},{"username":"u","perms":[]}]`, wantErr: true},
		{name: "not JSON", body: `{`, wantErr: true},
		{name: "object, not array", body: `{"username":"u"}`, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse([]byte(tc.body))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, wantErr %v", err, tc.wantErr)
			}
			if err != nil && !errors.Is(err, ErrBadFile) {
				t.Fatalf("err %v is not ErrBadFile", err)
			}
		})
	}
}

func TestOpenRefuses(t *testing.T) {
	if _, err := Open(Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("no path: %v", err)
	}
	if _, err := Open(Config{Path: filepath.Join(t.TempDir(), "missing.json")}); !errors.Is(err, ErrBadFile) {
		t.Fatalf("missing file: %v", err)
	}
	path := filepath.Join(t.TempDir(), "a.json")
	writeFile(t, path, `[{"username":"u","perms":["nope"]}]`)
	if _, err := Open(Config{Path: path}); !errors.Is(err, ErrBadFile) {
		t.Fatalf("unknown perm: %v", err)
	}
}

func TestAllowed(t *testing.T) {
	s, _ := openTest(t, testCreds)
	for _, tc := range []struct {
		name       string
		user, pass string
		basic      bool
		perms      []Perm
		want       bool
	}{
		{name: "anonymous status via *", perms: []Perm{PermStatus}, want: true},
		{name: "anonymous ready via *", perms: []Perm{PermReady}, want: true},
		{name: "anonymous execute", perms: []Perm{PermExecute}, want: false},
		{name: "missing header, query", perms: []Perm{PermQuery}, want: false},
		{name: "bob all", user: "bob", pass: "secret1", basic: true, perms: []Perm{PermExecute}, want: true},
		{name: "bob all, both perms", user: "bob", pass: "secret1", basic: true, perms: []Perm{PermQuery, PermExecute}, want: true},
		{name: "bob wrong password", user: "bob", pass: "secret2", basic: true, perms: []Perm{PermExecute}, want: false},
		{name: "bob empty password", user: "bob", basic: true, perms: []Perm{PermExecute}, want: false},
		{name: "bob password prefix", user: "bob", pass: "secret", basic: true, perms: []Perm{PermExecute}, want: false},
		{name: "mary query", user: "mary", pass: "secret2", basic: true, perms: []Perm{PermQuery}, want: true},
		{name: "mary execute", user: "mary", pass: "secret2", basic: true, perms: []Perm{PermExecute}, want: false},
		{name: "mary request needs both", user: "mary", pass: "secret2", basic: true, perms: []Perm{PermQuery, PermExecute}, want: false},
		{name: "mary status via *", user: "mary", pass: "wrong", basic: true, perms: []Perm{PermStatus}, want: true},
		{name: "unknown user", user: "eve", pass: "secret1", basic: true, perms: []Perm{PermQuery}, want: false},
		{name: "join-read-replica is join-read-only", user: "rr", pass: "x", basic: true, perms: []Perm{PermJoinReadOnly}, want: true},
		{name: "join-read-replica is not join", user: "rr", pass: "x", basic: true, perms: []Perm{PermJoin}, want: false},
		{name: "no perms needed", want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.Allowed(tc.user, tc.pass, tc.basic, tc.perms...); got != tc.want {
				t.Fatalf("Allowed = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestStarAll(t *testing.T) {
	s, _ := openTest(t, `[{"username":"*","perms":["all"]}]`)
	for _, p := range []Perm{PermExecute, PermQuery, PermLoad, PermRemove, PermLeaderOps} {
		if !s.Allowed("", "", false, p) {
			t.Fatalf("* all: %s refused", p)
		}
	}
}

func TestReload(t *testing.T) {
	s, path := openTest(t, testCreds)
	if s.Allowed("mary", "secret2", true, PermExecute) {
		t.Fatal("mary may execute before the edit")
	}
	writeFile(t, path, `[{"username":"mary","password":"secret2","perms":["execute"]}]`)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if !s.Allowed("mary", "secret2", true, PermExecute) || s.Allowed("bob", "secret1", true, PermExecute) {
		t.Fatal("reload did not replace the credentials")
	}
	// A bad file keeps what was loaded.
	writeFile(t, path, `[{"username":"mary","perms":["bogus"]}]`)
	if err := s.Reload(); !errors.Is(err, ErrBadFile) {
		t.Fatalf("bad file: %v", err)
	}
	if !s.Allowed("mary", "secret2", true, PermExecute) {
		t.Fatal("bad file replaced the credentials")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); !errors.Is(err, ErrBadFile) || !s.Allowed("mary", "secret2", true, PermExecute) {
		t.Fatalf("missing file: %v, or credentials lost", err)
	}
}

// awaitAllowed polls Allowed until it answers want or the test deadline.
func awaitAllowed(t *testing.T, s *Store, want bool, user, pass string, p Perm) {
	t.Helper()
	for s.Allowed(user, pass, true, p) != want {
		if dl, ok := t.Deadline(); ok && time.Now().After(dl.Add(-5*time.Second)) {
			t.Fatalf("Allowed(%s, %s) never became %v", user, p, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.json")
	writeFile(t, path, testCreds)
	s, err := Open(Config{Path: path, PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Watch(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	// Size changes with the edit, so the poll sees it even when the mtime
	// granularity is coarse.
	writeFile(t, path, `[{"username":"mary","password":"secret2","perms":["query","execute"]}]`)
	awaitAllowed(t, s, true, "mary", "secret2", PermExecute)

	writeFile(t, path, `[{"username":"mary","password":"secret2","perms":["nope", "this file is longer"]}]`)
	// The bad file is seen (the stamp moves) yet the credentials stay.
	for {
		s.mu.Lock()
		st := s.seen
		s.mu.Unlock()
		if now, err := filewatch.Take(path); err == nil && now.Equal(st) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !s.Allowed("mary", "secret2", true, PermExecute) {
		t.Fatal("bad file replaced the credentials")
	}
	writeFile(t, path, `[{"username":"bob","password":"b","perms":["all"]}]`)
	awaitAllowed(t, s, false, "mary", "secret2", PermExecute)
	awaitAllowed(t, s, true, "bob", "b", PermExecute)
}

func TestZeroStoreRefuses(t *testing.T) {
	var s Store
	if s.Allowed("bob", "secret1", true, PermStatus) {
		t.Fatal("a Store with no credentials allowed a request")
	}
}
