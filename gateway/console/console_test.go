package console

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// TestAssetsEmbedded: the pages the console needs are in the binary.
func TestAssetsEmbedded(t *testing.T) {
	for _, name := range []string{"index.html", "console.css", "console.js"} {
		b, err := fs.ReadFile(Assets(), name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(b) < 100 {
			t.Fatalf("%s: only %d bytes", name, len(b))
		}
	}
}

// TestHandlerContentTypes: each asset is served with its type, the index
// at the prefix itself, and only GET/HEAD are allowed.
func TestHandlerContentTypes(t *testing.T) {
	h := Handler()
	for _, tc := range []struct {
		path, ctype, contains string
		status                int
	}{
		{"/console/", "text/html; charset=utf-8", "<title>Skiff console</title>", 200},
		{"/console/console.css", "text/css; charset=utf-8", "progress", 200},
		{"/console/console.js", "text/javascript; charset=utf-8", "textContent", 200},
		{"/console/nope.js", "text/plain; charset=utf-8", "404", 404},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
		body, _ := io.ReadAll(rec.Result().Body)
		if rec.Code != tc.status || rec.Header().Get("Content-Type") != tc.ctype || !strings.Contains(string(body), tc.contains) {
			t.Errorf("GET %s: %d %q %.80q; want %d %q containing %q", tc.path, rec.Code, rec.Header().Get("Content-Type"), body, tc.status, tc.ctype, tc.contains)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/console/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /console/: %d, want 405", rec.Code)
	}
}

// externalRef finds a URL that leaves the node: a scheme, a protocol-
// relative "//host" or an absolute path in src/href/url()/fetch targets.
var externalRef = regexp.MustCompile(`(?i)(https?:|wss?:|ftp:)//|(src|href)\s*=\s*["']?\s*(/|[a-z]+:)|url\(\s*["']?\s*(/|[a-z]+:)|@import`)

// TestNoExternalURLs: the console works offline, so no asset refers to
// anything but the node it came from.
func TestNoExternalURLs(t *testing.T) {
	err := fs.WalkDir(Assets(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(Assets(), path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if m := externalRef.FindString(line); m != "" {
				t.Errorf("%s:%d refers outside the node (%q): %s", path, i+1, m, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The scan itself must catch what it is meant to.
	for _, bad := range []string{`<script src="https://cdn.example/x.js">`, `<link href="//cdn.example/x.css">`,
		`<img src="/logo.png">`, `background: url(http://x/y.png)`, `fetch("http://10.0.0.1/status")`} {
		if !externalRef.MatchString(bad) {
			t.Errorf("scan misses %q", bad)
		}
	}
}

// TestNoInnerHTML: data reaches the DOM through textContent only.
func TestNoInnerHTML(t *testing.T) {
	b, err := fs.ReadFile(Assets(), "console.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
		if strings.Contains(string(b), bad) {
			t.Errorf("console.js uses %s", bad)
		}
	}
}
