package console

import (
	"embed"
	"io/fs"
	"net/http"
)

// Prefix is the path the console is served under.
const Prefix = "/console/"

//go:embed assets
var assets embed.FS

// Assets returns the console's files (index.html, console.css,
// console.js), rooted at the assets directory.
func Assets() fs.FS {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		// fs.Sub fails only on an invalid name; "assets" is valid.
		return assets
	}
	return sub
}

// Handler serves the assets for paths under Prefix. The caller routes
// "/console" (no slash) itself: it redirects.
func Handler() http.Handler {
	files := http.FileServerFS(Assets())
	return http.StripPrefix(Prefix[:len(Prefix)-1], http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		// The assets change with the binary; a stale page after an
		// upgrade would talk to the new API with old code.
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	}))
}
