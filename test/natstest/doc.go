// Package natstest runs a real NATS server with JetStream inside a test
// process, for the tests of CDC's NATS sink, the ingest consumer and the
// end-to-end tests: Start it (a free loopback port and a temporary store
// unless told otherwise), Shutdown and Restart it on the same port and
// store to test reconnection, Connect to it and create streams as an
// operator would.
//
// Everything takes the test and fails it on error; servers and
// connections are closed when the test ends.
package natstest
