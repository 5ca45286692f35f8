package auth

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"testing"
)

// marshalCreds writes parsed credentials back in the file's format, so a
// parse of the output can be compared with the first.
func marshalCreds(c *creds) ([]byte, error) {
	type entry struct {
		Username string   `json:"username"`
		Password string   `json:"password"`
		Perms    []string `json:"perms"`
	}
	out := make([]entry, 0, len(c.users))
	for _, name := range slices.Sorted(maps.Keys(c.users)) {
		u := c.users[name]
		var perms []string
		for p := range u.perms {
			perms = append(perms, string(p))
		}
		slices.Sort(perms)
		out = append(out, entry{Username: name, Password: string(u.password), Perms: perms})
	}
	return json.Marshal(out)
}

func equalCreds(a, b *creds) bool {
	if len(a.users) != len(b.users) {
		return false
	}
	for name, ua := range a.users {
		ub, ok := b.users[name]
		if !ok || string(ua.password) != string(ub.password) || !maps.Equal(ua.perms, ub.perms) {
			return false
		}
	}
	return true
}

// FuzzParseCredentials: the credentials-file parser never panics, refuses
// only with ErrBadFile, and what it accepts round-trips (written back in
// the file's format, it parses to the same users, passwords and perms).
// Plain `go test` runs the seeds only.
func FuzzParseCredentials(f *testing.F) {
	for _, seed := range []string{
		testCreds, `[]`, `null`, `{`, `[{}]`, `[{"username":""}]`,
		`[{"username":"u","password":"p","perms":["all","join-read-replica"]}]`,
		`[{"username":"u","perms":["bogus"]}]`,
		`[{"username":"u"},{"username":"u"}]`,
		`[{"username":"\u00e9\u0000","password":"\ud800","perms":[]}]`,
		`[{"username":"u","password":1}]`,
		`[{"username":"u","perms":"all"}] trailing`,
		`[` + "\xff" + `]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parse(b)
		if err != nil {
			if !errors.Is(err, ErrBadFile) {
				t.Fatalf("error %v is not ErrBadFile", err)
			}
			return
		}
		for name, u := range c.users {
			if name == "" {
				t.Fatal("accepted an empty username")
			}
			for p := range u.perms {
				if !known[p] {
					t.Fatalf("accepted unknown perm %q", p)
				}
			}
		}
		out, err := marshalCreds(c)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		again, err := parse(out)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", out, err)
		}
		if !equalCreds(c, again) {
			t.Fatalf("round trip changed the credentials: %s", out)
		}
	})
}
