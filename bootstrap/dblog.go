package bootstrap

import (
	"sync"
	"sync/atomic"

	"github.com/lni/dragonboat/v4/logger"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// dragonboatLogs routes Dragonboat's loggers into zap. Dragonboat's factory
// is process-global and may be set only once, so it is installed once and
// forwards to whichever node's logger is current (tests run several nodes in
// one process; a real process runs one).
type dragonboatLogs struct {
	once  sync.Once
	base  atomic.Pointer[zap.Logger]
	level zap.AtomicLevel
	// nodeTLS: Skiff's node-to-node TLS is on, so Dragonboat's warning
	// that its own (unused) mutual TLS is off would mislead.
	nodeTLS atomic.Bool
}

// dragonboatNoTLS is Dragonboat's config warning that its own mutual TLS
// is off.
const dragonboatNoTLS = "mutual TLS disabled, communication is insecure"

var dbLogs = &dragonboatLogs{level: zap.NewAtomicLevelAt(zapcore.WarnLevel)}

// install points Dragonboat's logging at base, at level.
func (d *dragonboatLogs) install(base *zap.Logger, level zapcore.Level) {
	d.base.Store(base)
	d.level.SetLevel(level)
	d.once.Do(func() {
		logger.SetLoggerFactory(func(pkg string) logger.ILogger {
			return &dbLogger{d: d, pkg: "dragonboat." + pkg}
		})
	})
}

// dbLogger implements Dragonboat's ILogger. SetLevel is ignored: the level
// is Skiff's -raft-log-level for every package.
type dbLogger struct {
	d   *dragonboatLogs
	pkg string
}

func (l *dbLogger) sugar(lvl zapcore.Level) *zap.SugaredLogger {
	if !l.d.level.Enabled(lvl) {
		return nil
	}
	// Skip this adapter and Dragonboat's lazy wrapper so callers point at
	// Dragonboat's own files.
	return l.d.base.Load().WithOptions(zap.AddCallerSkip(2)).Named(l.pkg).Sugar()
}

func (l *dbLogger) SetLevel(logger.LogLevel) {}

func (l *dbLogger) Debugf(f string, a ...any) {
	if s := l.sugar(zapcore.DebugLevel); s != nil {
		s.Debugf(f, a...)
	}
}

func (l *dbLogger) Infof(f string, a ...any) {
	if s := l.sugar(zapcore.InfoLevel); s != nil {
		s.Infof(f, a...)
	}
}

func (l *dbLogger) Warningf(f string, a ...any) {
	if f == dragonboatNoTLS && l.d.nodeTLS.Load() {
		return
	}
	if s := l.sugar(zapcore.WarnLevel); s != nil {
		s.Warnf(f, a...)
	}
}

func (l *dbLogger) Errorf(f string, a ...any) {
	if s := l.sugar(zapcore.ErrorLevel); s != nil {
		s.Errorf(f, a...)
	}
}

// Panicf must panic: Dragonboat calls it on broken invariants and would go
// on with corrupt state if it returned (DRAGONBOAT.md 4.3, issue #249).
func (l *dbLogger) Panicf(f string, a ...any) {
	l.d.base.Load().WithOptions(zap.AddCallerSkip(2)).Named(l.pkg).Sugar().Panicf(f, a...)
}
