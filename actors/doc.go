// Package actors is Skiff's actor toolkit: typed requests with their own
// reply channels, a Call helper that can never block forever on a dead
// actor, a Done signal closed exactly once, and a Supervisor that starts
// every actor, stops them all when one fails, and shuts them down in an
// order written down in one place.
//
// The node's actors live in sub-packages: lifecycle (the node's state) and
// replica (the sole owner of Dragonboat's NodeHost). The HTTP gateway is an
// actor too, in package gateway.
package actors
