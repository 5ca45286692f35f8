package failpoint

import "errors"

// Sentinel errors of package failpoint.
var (
	// ErrInjected is what an "error" action makes Inject return.
	ErrInjected = errors.New("failpoint: injected error")
	// ErrBadSpec reports a spec or action that does not parse.
	ErrBadSpec = errors.New("failpoint: bad spec")
	// ErrNotCompiled reports a failpoint request to a binary built without
	// the failpoints tag.
	ErrNotCompiled = errors.New("failpoint: not compiled in (build with -tags failpoints)")
)
