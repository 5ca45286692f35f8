// Package failpoint holds a node's named failpoints: places in the code
// where a test can make the node sleep, pause, fail or crash, so that every
// phase of a node's life (opening, log replay, snapshot transfer, stopping)
// can be held open and hammered in seconds (issue 5).
//
// Failpoints exist only in binaries built with the "failpoints" build tag.
// Without it every method of *Set is a no-op the compiler inlines, New
// refuses a non-empty spec, and production binaries carry no way to inject
// a fault. A nil *Set has no failpoints in either build.
//
// A spec is "name=action;name=action". Actions:
//
//	off          disabled
//	sleep(D)     wait D (a time.ParseDuration string), then go on
//	pause        wait until the failpoint is changed or disabled
//	error        return ErrInjected to the caller
//	crash        SIGKILL this process (a crash, no deferred cleanup)
//	N*action     the action for the first N evaluations, then off
//
// Hand-written rather than gofail or pingcap/failpoint: both rewrite the
// source tree before a build, which the e2e tests' plain "go build -tags"
// cannot do.
package failpoint
