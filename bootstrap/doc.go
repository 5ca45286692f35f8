// Package bootstrap turns a Config into a running node: it binds the HTTP
// port first (so a client never sees a refused connection while the node
// starts), starts the lifecycle and gateway actors, loads the node's
// identity from its local store, then starts the replica actor, all under
// one supervisor. Shutdown order is written down in shutdownSteps, with a
// reason per step.
package bootstrap
