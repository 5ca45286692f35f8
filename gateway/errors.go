package gateway

import (
	"errors"
	"net/http"

	"github.com/skiffdb/skiff/actors"
	"github.com/skiffdb/skiff/actors/lifecycle"
	"github.com/skiffdb/skiff/actors/queue"
	"github.com/skiffdb/skiff/actors/replica"
	"github.com/skiffdb/skiff/gateway/rqjson"
	"github.com/skiffdb/skiff/sm"
	"github.com/skiffdb/skiff/sm/failpoint"
)

// Sentinel errors of package gateway.
var (
	ErrBodyTooLarge = errors.New("request body too large")
	ErrBadFormat    = errors.New("invalid backup format")
	// ErrQualifyUnsupported: a binary built without the Makefile's
	// sqlite_column_metadata tag cannot name a column's table.
	ErrQualifyUnsupported = errors.New("qualify_columns is not supported by this build (build with -tags sqlite_column_metadata)")
	ErrNoLeader           = errors.New("leader not found")
	// Phase errors refuse data requests while the node cannot serve them
	// (DESIGN.md "Lifecycle states").
	ErrStarting   = errors.New("node is starting")
	ErrOpening    = errors.New("node is opening its database")
	ErrJoining    = errors.New("node is joining the cluster")
	ErrRecovering = errors.New("node is recovering")
	ErrStopping   = errors.New("node is stopping")
	ErrRemoved    = errors.New("node was removed from the cluster")
)

// phaseErr is the refusal for a data request in a phase that cannot serve it.
func phaseErr(p lifecycle.Phase) error {
	switch p {
	case lifecycle.Starting:
		return ErrStarting
	case lifecycle.Opening:
		return ErrOpening
	case lifecycle.Joining:
		return ErrJoining
	case lifecycle.Recovering:
		return ErrRecovering
	case lifecycle.Degraded:
		return ErrNoLeader
	case lifecycle.Stopping:
		return ErrStopping
	case lifecycle.Removed:
		return ErrRemoved
	}
	return nil
}

// bodyForm is how an error body is written.
type bodyForm int

const (
	// plainText is rqlite's http.Error: the message and a newline.
	plainText bodyForm = iota
	// jsonError is {"error":"..."}: Skiff's phase refusals (DESIGN.md).
	jsonError
)

// errorTable is the one mapping from errors to HTTP statuses. The first
// entry that matches (errors.Is) wins. useText says whether the body is the
// error's own text (rqlite's exact 400 messages carry detail) or the
// sentinel's (a wrapped Dragonboat error is not for clients).
var errorTable = []struct {
	err     error
	status  int
	form    bodyForm
	useText bool
}{
	{rqjson.ErrInvalidJSON, http.StatusBadRequest, plainText, true},
	{rqjson.ErrInvalidRequest, http.StatusBadRequest, plainText, true},
	{rqjson.ErrNoStatements, http.StatusBadRequest, plainText, true},
	{rqjson.ErrUnsupportedType, http.StatusBadRequest, plainText, true},
	{rqjson.ErrBadParam, http.StatusBadRequest, plainText, true},
	{ErrBodyTooLarge, http.StatusRequestEntityTooLarge, plainText, false},
	{ErrBadFormat, http.StatusBadRequest, plainText, true},
	{ErrQualifyUnsupported, http.StatusBadRequest, plainText, false},
	{sm.ErrInvalidSQLite, http.StatusBadRequest, plainText, false},
	{sm.ErrUploadCut, http.StatusBadRequest, plainText, true},
	{ErrBadJoin, http.StatusBadRequest, plainText, true},
	{failpoint.ErrBadSpec, http.StatusBadRequest, plainText, true},
	{ErrUnknownNode, http.StatusNotFound, plainText, true},
	{replica.ErrBadMember, http.StatusConflict, plainText, true},
	{queue.ErrWaitTimeout, http.StatusRequestTimeout, plainText, false},
	{replica.ErrTooLarge, http.StatusRequestEntityTooLarge, plainText, false},
	{replica.ErrNotSingleNode, http.StatusServiceUnavailable, plainText, false},
	{ErrStarting, http.StatusServiceUnavailable, jsonError, false},
	{ErrOpening, http.StatusServiceUnavailable, jsonError, false},
	{ErrJoining, http.StatusServiceUnavailable, jsonError, false},
	{ErrRecovering, http.StatusServiceUnavailable, jsonError, false},
	{ErrStopping, http.StatusServiceUnavailable, jsonError, false},
	{ErrRemoved, http.StatusServiceUnavailable, jsonError, false},
	{ErrNoLeader, http.StatusServiceUnavailable, plainText, false},
	{replica.ErrNoLeader, http.StatusServiceUnavailable, plainText, false},
	{replica.ErrNotStarted, http.StatusServiceUnavailable, jsonError, false},
	{replica.ErrNotReady, http.StatusServiceUnavailable, plainText, false},
	{replica.ErrBusy, http.StatusServiceUnavailable, plainText, false},
	{replica.ErrTimeout, http.StatusServiceUnavailable, plainText, false},
	{replica.ErrStopped, http.StatusServiceUnavailable, jsonError, false},
	{actors.ErrStopped, http.StatusServiceUnavailable, jsonError, false},
	{actors.ErrCanceled, http.StatusServiceUnavailable, plainText, false},
}

// classify returns the status, body form and message for err.
func classify(err error) (int, bodyForm, string) {
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			if e.useText {
				return e.status, e.form, err.Error()
			}
			return e.status, e.form, e.err.Error()
		}
	}
	return http.StatusInternalServerError, plainText, err.Error()
}
