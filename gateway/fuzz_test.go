package gateway

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.uber.org/zap"
)

// FuzzBasicAuthHeader drives the Authorization header through the
// gateway's permission check (net/http's Basic parsing, then the store):
// it never panics, and it never grants /db/execute or a join unless the
// header decodes to bob's exact credentials (the only user holding
// execute and join; `*` holds status only). Plain `go test` runs the
// seeds only.
func FuzzBasicAuthHeader(f *testing.F) {
	basic := func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, seed := range []string{
		basic("bob:pb"), basic("bob:pb "), basic("bob:"), basic("bob"), basic(":pb"), basic("bob:pb:extra"),
		basic("voter:pv"), basic("*:"), basic("q:pq"), basic("bob:PB"), basic("bob\x00:pb"),
		"Basic", "Basic ", "basic " + base64.StdEncoding.EncodeToString([]byte("bob:pb")), "Bearer xyz",
		"Basic !!!notbase64", "Basic Ym9iOnBi====", "Basic " + base64.RawStdEncoding.EncodeToString([]byte("bob:pb")),
		"", "\xff\xfe", "Basic " + base64.URLEncoding.EncodeToString([]byte("bob:pb?>")),
	} {
		f.Add(seed)
	}
	g := &Gateway{log: zap.NewNop(), cfg: Config{Auth: openStore(f, `[
  {"username": "bob",   "password": "pb", "perms": ["all"]},
  {"username": "voter", "password": "pv", "perms": ["status"]},
  {"username": "q",     "password": "pq", "perms": ["query"]},
  {"username": "*",                       "perms": ["status"]}
]`)}}
	f.Fuzz(func(t *testing.T, header string) {
		r := httptest.NewRequest(http.MethodPost, "/db/execute", nil)
		r.Header.Set("Authorization", header)
		u, p, ok := r.BasicAuth()
		isBob := ok && u == "bob" && p == "pb"
		if g.authorized(r, "/db/execute") && !isBob {
			t.Fatalf("execute granted to %q (user %q, password %q, ok %v)", header, u, p, ok)
		}
		if !g.authorized(r, "/status") {
			t.Fatalf("status refused to %q, though * holds it", header)
		}
		w := httptest.NewRecorder()
		if g.joinAuthorized(w, r, "join", "n2", joinPerm(JoinRequest{})) != isBob {
			t.Fatalf("join: granted %v to %q, want %v", !isBob, header, isBob)
		}
		if !isBob && w.Code != http.StatusUnauthorized {
			t.Fatalf("join refusal answered %d", w.Code)
		}
	})
}
