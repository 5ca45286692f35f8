package tlsreload

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/skiffdb/skiff/gateway/filewatch"
)

// DefaultInterval is how often the files are checked for a change.
const DefaultInterval = time.Second

var (
	// ErrInvalidConfig is returned by Config.Validate.
	ErrInvalidConfig = errors.New("invalid TLS reload config")
	// ErrIncompletePair is returned when only one of the certificate and
	// key is named: serving half a pair is impossible, and silently
	// serving plain HTTP instead would mislead the operator.
	ErrIncompletePair = errors.New("certificate and key must be given together")
	// ErrLoad is returned when the pair cannot be read or does not match.
	ErrLoad = errors.New("load TLS certificate and key")
)

// Config names the files.
type Config struct {
	CertFile, KeyFile string
	// Interval is how often the files' modification times are checked.
	Interval time.Duration
	Logger   *zap.Logger
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// Validate reports whether c is usable.
func (c Config) Validate() error {
	if err := CheckPair(c.CertFile, c.KeyFile); err != nil {
		return err
	}
	if c.CertFile == "" {
		return fmt.Errorf("%w: no certificate and key", ErrInvalidConfig)
	}
	if c.Interval < 0 {
		return fmt.Errorf("%w: negative interval %v", ErrInvalidConfig, c.Interval)
	}
	return nil
}

// CheckPair reports ErrIncompletePair unless both or neither file is named.
func CheckPair(certFile, keyFile string) error {
	if (certFile == "") != (keyFile == "") {
		return fmt.Errorf("%w (certificate %q, key %q)", ErrIncompletePair, certFile, keyFile)
	}
	return nil
}

// Reloader holds the current certificate.
type Reloader struct {
	cfg  Config
	cert atomic.Pointer[tls.Certificate]
	// stamp is the files' state when last loaded (or last failed), so a
	// bad pair is reported once per change, not every poll.
	stamp filewatch.Stamp
}

// New loads the pair; it fails if the first load fails, since there is
// no previous pair to keep.
func New(cfg Config) (*Reloader, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Reloader{cfg: cfg}
	r.stamp, _ = r.stat()
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Reloader) stat() (filewatch.Stamp, error) {
	return filewatch.Take(r.cfg.CertFile, r.cfg.KeyFile)
}

func (r *Reloader) load() error {
	c, err := tls.LoadX509KeyPair(r.cfg.CertFile, r.cfg.KeyFile)
	if err != nil {
		return fmt.Errorf("%w (%s, %s): %w", ErrLoad, r.cfg.CertFile, r.cfg.KeyFile, err)
	}
	r.cert.Store(&c)
	return nil
}

// GetCertificate is a tls.Config.GetCertificate returning the current pair.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// Current returns the pair new handshakes get.
func (r *Reloader) Current() *tls.Certificate { return r.cert.Load() }

// Check reloads the pair if either file changed since the last check and
// reports whether it did; a pair that fails to load keeps the old one and
// returns the error. Run calls it every Interval; it is exported for tests
// and for callers that learn of a change otherwise. Not safe for
// concurrent use with Run.
func (r *Reloader) Check() (bool, error) {
	st, err := r.stat()
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrLoad, err)
	}
	if st.Equal(r.stamp) {
		return false, nil
	}
	r.stamp = st
	if err := r.load(); err != nil {
		return false, err
	}
	return true, nil
}

// Run polls the files until ctx ends.
func (r *Reloader) Run(ctx context.Context) error {
	filewatch.Poll(ctx, r.cfg.Interval, r.Check, func(_ bool, err error) {
		if err != nil {
			// A rotation may be mid-write (one file replaced, not yet the
			// other): the next change retries.
			r.cfg.Logger.Warn("TLS certificate reload failed; keeping the previous certificate",
				zap.String("cert", r.cfg.CertFile), zap.String("key", r.cfg.KeyFile), zap.Error(err))
			return
		}
		r.cfg.Logger.Info("TLS certificate reloaded", zap.String("cert", r.cfg.CertFile), zap.String("key", r.cfg.KeyFile))
	})
	return nil
}
