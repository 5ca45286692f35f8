// Package nodeview is `skiff status`: a terminal view of every node of a
// cluster, redrawn every second. The node list comes from /nodes
// (?nonvoters&ver=2) of the first address that answers, plus any given
// address it does not name; each node's role, lifecycle phase and
// recovery progress come from its own /status (Skiff's `lifecycle`
// section, API.md 2.1). Gather and Render are synchronous and tested
// without a terminal; Watch is the live loop.
package nodeview
