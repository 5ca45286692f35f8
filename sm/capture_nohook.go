//go:build !sqlite_preupdate_hook

package sm

import sqlite3 "github.com/mattn/go-sqlite3"

// captureSupported: go-sqlite3 has no pre-update hook in this build
// (Config.Validate refuses Capture with ErrCaptureUnsupported).
const captureSupported = false

type hookState struct{}

func (s *StateMachine) registerCapture(*sqlite3.SQLiteConn) error { return nil }

func (hookState) changes() int { return 0 }
