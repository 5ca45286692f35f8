package auth

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/skiffdb/skiff/gateway/filewatch"
)

// Perm is a permission name as written in the credentials file.
type Perm string

// The permissions rqlite knows (API.md 1.12).
const (
	PermAll             Perm = "all"
	PermExecute         Perm = "execute"
	PermQuery           Perm = "query"
	PermStatus          Perm = "status"
	PermReady           Perm = "ready"
	PermBackup          Perm = "backup"
	PermLoad            Perm = "load"
	PermSnapshot        Perm = "snapshot"
	PermRemove          Perm = "remove"
	PermJoin            Perm = "join"
	PermJoinReadOnly    Perm = "join-read-only"
	PermJoinReadReplica Perm = "join-read-replica"
	PermLeaderOps       Perm = "leader-ops"
	PermUI              Perm = "ui"
)

// AnyUser is the username whose permissions every client has, anonymous
// or not.
const AnyUser = "*"

// DefaultPollInterval is how often Watch looks at the file.
const DefaultPollInterval = time.Second

var known = map[Perm]bool{
	PermAll: true, PermExecute: true, PermQuery: true, PermStatus: true, PermReady: true,
	PermBackup: true, PermLoad: true, PermSnapshot: true, PermRemove: true, PermJoin: true,
	PermJoinReadOnly: true, PermJoinReadReplica: true, PermLeaderOps: true, PermUI: true,
}

// Errors.
var (
	// ErrInvalidConfig: Config.Validate refused the config.
	ErrInvalidConfig = errors.New("invalid auth config")
	// ErrBadFile: the credentials file cannot be read or parsed, or names
	// a permission rqlite does not know.
	ErrBadFile = errors.New("invalid credentials file")
	// ErrNoCredentials, ErrBadCredentials and ErrPermission are Check's
	// causes of a refusal: no Basic credentials where `*` does not grant
	// the perm; an unknown user or a wrong password (one error for both,
	// so that a refusal does not tell which users exist); a user without
	// the perm.
	ErrNoCredentials  = errors.New("credentials required")
	ErrBadCredentials = errors.New("wrong username or password")
	ErrPermission     = errors.New("permission denied")
)

// Config configures a Store.
type Config struct {
	// Path is the credentials file (rqlited's -auth).
	Path string
	// PollInterval is how often Watch checks the file's size and mtime.
	PollInterval time.Duration
	Logger       *zap.Logger
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// Validate reports whether c is usable.
func (c Config) Validate() error {
	switch {
	case c.Path == "":
		return fmt.Errorf("%w: Path is required", ErrInvalidConfig)
	case c.PollInterval < 0:
		return fmt.Errorf("%w: PollInterval %v < 0", ErrInvalidConfig, c.PollInterval)
	}
	return nil
}

// user is one entry of the file.
type user struct {
	password []byte
	perms    map[Perm]bool
}

// creds is one parsed version of the file.
type creds struct {
	users map[string]user
}

// Store holds the credentials; safe for concurrent use.
type Store struct {
	cfg Config
	cur atomic.Pointer[creds]
	// mu serializes reloads (SIGHUP and the watcher) so that an older read
	// of the file never replaces a newer one.
	mu   sync.Mutex
	seen filewatch.Stamp
}

// Open reads the credentials file; a bad file is an error (the node must
// refuse to start rather than run open or closed by surprise).
func Open(cfg Config) (*Store, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// parse parses the JSON credentials format: an array of
// {"username","password","perms"}.
func parse(b []byte) (*creds, error) {
	var entries []struct {
		Username string   `json:"username"`
		Password string   `json:"password"`
		Perms    []string `json:"perms"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&entries); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadFile, err)
	}
	c := &creds{users: make(map[string]user, len(entries))}
	for i, e := range entries {
		if e.Username == "" {
			return nil, fmt.Errorf("%w: entry %d has no username", ErrBadFile, i)
		}
		if _, dup := c.users[e.Username]; dup {
			return nil, fmt.Errorf("%w: user %q appears twice", ErrBadFile, e.Username)
		}
		u := user{password: []byte(e.Password), perms: map[Perm]bool{}}
		for _, p := range e.Perms {
			if !known[Perm(p)] {
				return nil, fmt.Errorf("%w: user %q: unknown permission %q", ErrBadFile, e.Username, p)
			}
			u.perms[Perm(p)] = true
		}
		// join-read-replica is v10.3's name for join-read-only.
		if u.perms[PermJoinReadReplica] {
			u.perms[PermJoinReadOnly] = true
		}
		c.users[e.Username] = u
	}
	return c, nil
}

// Reload re-reads the file; on error the old credentials stay.
func (s *Store) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reloadLocked()
}

func (s *Store) reloadLocked() error {
	st, err := filewatch.Take(s.cfg.Path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadFile, err)
	}
	b, err := os.ReadFile(s.cfg.Path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadFile, err)
	}
	// Recorded before parsing so that a bad file is reported once, not
	// at every poll.
	s.seen = st
	c, err := parse(b)
	if err != nil {
		return err
	}
	s.cur.Store(c)
	return nil
}

// reloadIfChanged reports whether the file's size or mtime differ from the last
// read, and reloads it if so. It returns the reload's error.
func (s *Store) reloadIfChanged() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := filewatch.Take(s.cfg.Path)
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrBadFile, err)
	}
	if st.Equal(s.seen) {
		return false, nil
	}
	return true, s.reloadLocked()
}

// Watch polls the file every PollInterval until ctx ends, reloading it when
// its size or mtime changes; a file that fails to parse is logged (without
// its contents) and the old credentials stay.
func (s *Store) Watch(ctx context.Context) {
	filewatch.Poll(ctx, s.cfg.PollInterval, s.reloadIfChanged, func(_ bool, err error) {
		if err != nil {
			s.cfg.Logger.Warn("credentials file not reloaded; keeping the previous credentials", zap.String("path", s.cfg.Path), zap.Error(err))
			return
		}
		s.cfg.Logger.Info("credentials file reloaded", zap.String("path", s.cfg.Path))
	})
}

// hasPerm reports whether user u has perm p (or all). It does not check a
// password: rqlite's HasPerm.
func (c *creds) hasPerm(u string, p Perm) bool {
	e, ok := c.users[u]
	return ok && (e.perms[p] || e.perms[PermAll])
}

// check compares a password in constant time. An unknown user still pays
// for a comparison, so timing does not tell which users exist.
func (c *creds) check(u string, password []byte) bool {
	e, ok := c.users[u]
	want := e.password
	if !ok {
		want = password
	}
	eq := subtle.ConstantTimeCompare(want, password) == 1
	return ok && eq
}

// Allowed applies rqlite's algorithm for one request needing every perm in
// perms: a perm `*` has (or `all` for `*`) needs no credentials; otherwise
// the request must carry Basic credentials (hasBasic) of a user whose
// password matches and who has the perm or `all`.
func (s *Store) Allowed(username, password string, hasBasic bool, perms ...Perm) bool {
	return s.Check(username, password, hasBasic, perms...) == nil
}

// Check is Allowed with the cause of a refusal: ErrNoCredentials,
// ErrBadCredentials or ErrPermission (naming the user and the perm), so
// that a refused joiner can say why.
func (s *Store) Check(username, password string, hasBasic bool, perms ...Perm) error {
	c := s.cur.Load()
	if c == nil {
		// A Store not made by Open has no credentials: refuse, never
		// serve everyone.
		return fmt.Errorf("%w: no credentials loaded", ErrBadCredentials)
	}
	for _, p := range perms {
		if c.hasPerm(AnyUser, p) {
			continue
		}
		switch {
		case !hasBasic:
			return fmt.Errorf("%w for %s", ErrNoCredentials, p)
		case !c.check(username, []byte(password)):
			return ErrBadCredentials
		case !c.hasPerm(username, p):
			return fmt.Errorf("%w: user %q lacks the %s permission", ErrPermission, username, p)
		}
	}
	return nil
}

// Password returns user's password and whether the user exists: a node's
// -join-as user authenticates with it (rqlite reads it from the node's own
// credentials file).
func (s *Store) Password(user string) (string, bool) {
	c := s.cur.Load()
	if c == nil {
		return "", false
	}
	u, ok := c.users[user]
	return string(u.password), ok
}
