// Package console holds Skiff's web console (/console/): plain HTML, CSS
// and a little vanilla JavaScript, embedded in the binary so that it works
// offline and needs no build step. The pages talk to the node's ordinary
// HTTP API (/db/request, /db/backup, /db/load, /nodes, /status); the
// gateway serves the assets and, for the cluster page, relays a peer's
// /status (a browser may not read another origin without CORS).
package console
