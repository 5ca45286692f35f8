package sm

import "errors"

// Sentinel errors of package sm. Callers check them with errors.Is.
var (
	// ErrClosed is returned by Lookup after Close, or before Open finished.
	ErrClosed = errors.New("state machine closed")
	// ErrBadQuery is returned by Lookup for a query value it does not know.
	ErrBadQuery = errors.New("unsupported lookup query")
	// ErrSnapshotFormat is returned by RecoverFromSnapshot for a stream that
	// is not a Skiff snapshot or fails its checksum.
	ErrSnapshotFormat = errors.New("invalid snapshot stream")
	// ErrStorage marks a storage fault (I/O error, disk full, corruption):
	// returned from Update or Sync it stops the node, because applying past
	// it could make this replica diverge from the others.
	ErrStorage = errors.New("storage fault")
	// ErrNewerCommand marks an entry this build cannot apply: a command
	// version or type a newer Skiff writes. Update returns it (wrapped in
	// ErrStorage), which stops the node: nodes that apply the entry and
	// nodes that skip it would diverge, so a node stops there until it is
	// upgraded, and replays the entry then.
	ErrNewerCommand = errors.New("entry written by a newer Skiff: upgrade this node to apply it")
	// ErrUploadCut is returned when a /boot or binary /db/load body ends
	// before its end (the client went away): the client's fault, not a
	// storage fault; nothing was installed.
	ErrUploadCut = errors.New("read boot upload")
	// ErrInvalidConfig is returned by Config.Validate.
	ErrInvalidConfig = errors.New("invalid sm config")
	// ErrCaptureUnsupported is returned by New (Config.Validate) when
	// Capture is set in a build without the sqlite_preupdate_hook tag.
	ErrCaptureUnsupported = errors.New("change data capture unsupported in this build")
)
