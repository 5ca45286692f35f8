package failpoint

// The failpoints a node has, one name per place in the code. Tests refer to
// them by these strings.
const (
	// BootstrapStart is reached before the node loads its identity: it
	// holds the node in "starting".
	BootstrapStart = "bootstrap/start"
	// BootstrapShutdown is reached once shutdown has begun: it holds the
	// node in "stopping" (bounded by the shutdown timeout).
	BootstrapShutdown = "bootstrap/shutdown"
	// SMOpen is reached inside the state machine's Open: "opening".
	SMOpen = "sm/open"
	// SMApply is reached before each Update batch: a slow log replay holds
	// a restarted node in "recovering"; "error" acts as a storage fault.
	SMApply = "sm/apply"
	// SMAfterCommit is reached after a batch's SQLite commit, before
	// Dragonboat learns of it: "crash" there tests replay after commit.
	SMAfterCommit = "sm/after-commit"
	// SMSnapshotSend is reached before each chunk a leader streams: slow
	// it to hold a joiner in "recovering", "error" interrupts the transfer.
	SMSnapshotSend = "sm/snapshot-send"
	// SMSnapshotInstall is reached before each chunk of a received
	// snapshot is written, by the receive tap as the stream arrives or by
	// the install from Dragonboat's file: it holds the node in
	// "recovering"; "crash" leaves a half-written file behind.
	SMSnapshotInstall = "sm/snapshot-install"
	// SMReceiveTap is reached when a snapshot stream's first chunk
	// arrives: "error" leaves the stream untapped, so that the install
	// writes it from Dragonboat's received file (sm/receivetap.go).
	SMReceiveTap = "sm/receive-tap"
	// SMBootInstall is reached when a BOOT entry (/boot, a binary
	// /db/load) has made its staged file ready, before the CURRENT
	// switch: "crash" there tests that the old database stays.
	SMBootInstall = "sm/boot-install"
)
