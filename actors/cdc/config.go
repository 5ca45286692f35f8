package cdc

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/skiffdb/skiff/sm"
)

// Sentinel errors of package cdc.
var (
	// ErrInvalidConfig is returned by ParseConfig and Config.Validate.
	ErrInvalidConfig = errors.New("invalid CDC config")
	// ErrClosed is returned by Outbox methods after Close.
	ErrClosed = errors.New("CDC outbox closed")
	// ErrStorage wraps an outbox read or write failure.
	ErrStorage = errors.New("CDC outbox storage fault")
	// ErrDelivery wraps a sink's refusal or failure to take a batch.
	ErrDelivery = errors.New("CDC delivery failed")
)

// Defaults, as rqlite's cdc.DefaultConfig.
const (
	DefaultMaxBatchSize          = 100
	DefaultMaxBatchDelay         = time.Second
	DefaultHighWatermarkInterval = 5 * time.Second
	DefaultTransmitTimeout       = 5 * time.Second
	DefaultTransmitMinBackoff    = time.Second
	DefaultTransmitMaxBackoff    = time.Minute
	// DefaultBackfillTimeout is how long the leader waits, blocked at a
	// range of changes it never captured, while every other voter answers
	// that it cannot supply it either, before it gives the range up as a
	// gap (Skiff's backfill_timeout).
	DefaultBackfillTimeout = time.Minute
	// StdoutEndpoint is the endpoint value that prints batches.
	StdoutEndpoint = "stdout"
)

// RetryPolicy is how the wait between two tries grows.
type RetryPolicy int

// The retry policies, as rqlite's.
const (
	// LinearRetryPolicy waits transmit_min_backoff between tries.
	LinearRetryPolicy RetryPolicy = iota
	// ExponentialRetryPolicy doubles the wait after each try, from
	// transmit_min_backoff, up to transmit_max_backoff.
	ExponentialRetryPolicy
)

// String is the policy's name in the JSON config.
func (p RetryPolicy) String() string {
	if p == ExponentialRetryPolicy {
		return "ExponentialRetryPolicy"
	}
	return "LinearRetryPolicy"
}

// SinkKind is where batches go, from the endpoint's form.
type SinkKind int

// The sinks.
const (
	SinkWebhook SinkKind = iota
	SinkStdout
	SinkNATS
)

// TLSConfig is rqlite's "tls" object: the webhook's (or NATS server's) TLS.
type TLSConfig struct {
	CACertFile         string `json:"ca_cert_file"`
	CertFile           string `json:"cert_file"`
	KeyFile            string `json:"key_file"`
	InsecureSkipVerify bool   `json:"insecure_skip_verify"`
	ServerName         string `json:"server_name"`
}

func (t TLSConfig) set() bool {
	return t != TLSConfig{}
}

// NATSConfig is Skiff's "nats" object, for a nats:// endpoint.
type NATSConfig struct {
	// Stream is the JetStream stream capturing the subject; empty finds it
	// by subject (it must exist).
	Stream string `json:"stream"`
	// CredentialsFile is a NATS .creds file (user JWT and NKey seed).
	CredentialsFile string `json:"credentials_file"`
}

// Config configures CDC out. The rqlite keys come from -cdc-config; Dir and
// NodeID are set by bootstrap.
type Config struct {
	// Endpoint is an http(s) URL (webhook), "stdout", or
	// nats://host:port/SUBJECT.
	Endpoint string
	// ServiceID is sent in every envelope (omitted when empty) and
	// prefixes NATS message IDs.
	ServiceID string
	// RowIDsOnly sends row IDs and no row images.
	RowIDsOnly bool
	// TableFilter, a regular expression, keeps only the tables whose name
	// it matches (unanchored, as rqlite's).
	TableFilter string
	TLS         TLSConfig
	NATS        NATSConfig
	// MaxBatchSize is the most Raft indexes (payload entries) in one POST.
	MaxBatchSize int
	// MaxBatchDelay is the longest a partial batch waits to fill.
	MaxBatchDelay time.Duration
	// HighWatermarkInterval is how often the leader replicates what the
	// sink acknowledged.
	HighWatermarkInterval time.Duration
	// TransmitTimeout bounds one try.
	TransmitTimeout time.Duration
	// TransmitMaxRetries: after this many failed tries rqlite drops the
	// batch; Skiff logs it and keeps retrying at TransmitMaxBackoff. Nil
	// (the default, as rqlite's omitted key) retries with the policy's
	// backoff forever.
	TransmitMaxRetries  *int
	TransmitRetryPolicy RetryPolicy
	TransmitMinBackoff  time.Duration
	TransmitMaxBackoff  time.Duration
	// BackfillTimeout: see DefaultBackfillTimeout (Skiff's key).
	BackfillTimeout time.Duration

	// Peers returns the Raft addresses of the other voters, whose peer
	// handler (PeerPath) serves their outbox to a node that installed a
	// snapshot past changes it never captured (bootstrap: lifecycle's
	// members). Nil: no peer to ask.
	Peers func() []string
	// PeerClient fetches from peers; nil is a client with connect and
	// response-header timeouts.
	PeerClient *http.Client
	// PeerTLS, when set, is node-to-node TLS (bootstrap/nodetls): peers
	// are asked over https:// with it, by the default PeerClient too.
	PeerTLS *tls.Config
	// RoleChanged returns a channel closed when this node's leadership may
	// have changed (lifecycle's Changed): an idle transmitter waits on it
	// and on captures. Nil: leadership is read again every leaderPoll.
	RoleChanged func() <-chan struct{}

	// Dir is the outbox's directory (bootstrap: <data>/cdc).
	Dir string
	// NodeID is the envelope's node_id.
	NodeID string
	Logger *zap.Logger
	// Stdout receives the stdout sink's lines; nil is os.Stdout.
	Stdout io.Writer
}

// WithDefaults returns c with zero fields set to rqlite's defaults.
func (c Config) WithDefaults() Config {
	if c.MaxBatchSize == 0 {
		c.MaxBatchSize = DefaultMaxBatchSize
	}
	if c.MaxBatchDelay == 0 {
		c.MaxBatchDelay = DefaultMaxBatchDelay
	}
	if c.HighWatermarkInterval == 0 {
		c.HighWatermarkInterval = DefaultHighWatermarkInterval
	}
	if c.TransmitTimeout == 0 {
		c.TransmitTimeout = DefaultTransmitTimeout
	}
	if c.TransmitMinBackoff == 0 {
		c.TransmitMinBackoff = DefaultTransmitMinBackoff
	}
	if c.TransmitMaxBackoff == 0 {
		c.TransmitMaxBackoff = DefaultTransmitMaxBackoff
	}
	if c.BackfillTimeout == 0 {
		c.BackfillTimeout = DefaultBackfillTimeout
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Stdout == nil {
		c.Stdout = os.Stdout
	}
	return c
}

func invalid(key, f string, a ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidConfig, key, fmt.Sprintf(f, a...))
}

// Kind is the sink the endpoint names (valid after Validate).
func (c Config) Kind() SinkKind {
	switch {
	case c.Endpoint == StdoutEndpoint:
		return SinkStdout
	case strings.HasPrefix(c.Endpoint, "nats://"):
		return SinkNATS
	}
	return SinkWebhook
}

// natsTarget splits a nats://host:port/SUBJECT endpoint.
func natsTarget(endpoint string) (server, subject string, err error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", "", invalid("endpoint", "%q is not a URL: %v", endpoint, err)
	}
	if u.Host == "" || u.Port() == "" {
		return "", "", invalid("endpoint", "%q: a NATS endpoint is nats://host:port/SUBJECT", endpoint)
	}
	subject = strings.TrimPrefix(u.Path, "/")
	if subject == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", "", invalid("endpoint", "%q: a NATS endpoint is nats://host:port/SUBJECT (no subject)", endpoint)
	}
	for _, tok := range strings.Split(subject, ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n/") {
			return "", "", invalid("endpoint", "%q: %q is not a NATS subject to publish to (no wildcards, empty tokens or spaces)", endpoint, subject)
		}
	}
	u.Path, u.RawPath = "", ""
	return u.String(), subject, nil
}

// Validate reports whether c can be used; it reads the TLS and credentials
// files, so that an unreadable one refuses the start.
func (c Config) Validate() error {
	switch c.Kind() {
	case SinkStdout:
	case SinkNATS:
		if _, _, err := natsTarget(c.Endpoint); err != nil {
			return err
		}
	default:
		u, err := url.Parse(c.Endpoint)
		if c.Endpoint == "" {
			return invalid("endpoint", "is required: an http(s) URL, %q or nats://host:port/SUBJECT", StdoutEndpoint)
		}
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return invalid("endpoint", "%q is not an http(s) URL, %q or nats://host:port/SUBJECT", c.Endpoint, StdoutEndpoint)
		}
		if u.Scheme == "http" && c.TLS.set() {
			return invalid("tls", "is set but the endpoint %q is not https", c.Endpoint)
		}
	}
	if c.Kind() == SinkStdout && c.TLS.set() {
		return invalid("tls", "is set but the endpoint is stdout")
	}
	if c.Kind() != SinkNATS && c.NATS != (NATSConfig{}) {
		return invalid("nats", "is set but the endpoint is not nats://")
	}
	if c.TableFilter != "" {
		if _, err := regexp.Compile(c.TableFilter); err != nil {
			return invalid("table_filter", "%q is not a regular expression: %v", c.TableFilter, err)
		}
	}
	switch {
	case c.MaxBatchSize < 1:
		return invalid("max_batch_size", "%d is not positive", c.MaxBatchSize)
	case c.MaxBatchDelay < 0:
		return invalid("max_batch_delay", "%s is negative", c.MaxBatchDelay)
	case c.HighWatermarkInterval <= 0:
		return invalid("high_watermark_interval", "%s is not positive", c.HighWatermarkInterval)
	case c.TransmitTimeout <= 0:
		return invalid("transmit_timeout", "%s is not positive", c.TransmitTimeout)
	case c.TransmitMaxRetries != nil && *c.TransmitMaxRetries < 0:
		return invalid("transmit_max_retries", "%d is negative", *c.TransmitMaxRetries)
	case c.TransmitRetryPolicy != LinearRetryPolicy && c.TransmitRetryPolicy != ExponentialRetryPolicy:
		return invalid("transmit_retry_policy", "%d is not a policy", c.TransmitRetryPolicy)
	case c.TransmitMinBackoff <= 0:
		return invalid("transmit_min_backoff", "%s is not positive", c.TransmitMinBackoff)
	case c.BackfillTimeout < 0:
		return invalid("backfill_timeout", "%s is negative", c.BackfillTimeout)
	case c.TransmitMaxBackoff < c.TransmitMinBackoff:
		return invalid("transmit_max_backoff", "%s is below transmit_min_backoff %s", c.TransmitMaxBackoff, c.TransmitMinBackoff)
	}
	if _, err := c.tlsConfig(); err != nil {
		return err
	}
	if f := c.NATS.CredentialsFile; f != "" {
		if _, err := os.ReadFile(f); err != nil {
			return invalid("nats.credentials_file", "%v", err)
		}
	}
	return nil
}

// tlsConfig builds the client TLS configuration; nil when "tls" is unset.
func (c Config) tlsConfig() (*tls.Config, error) {
	if !c.TLS.set() {
		return nil, nil
	}
	conf, err := c.TLS.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("%w: tls.%w", ErrInvalidConfig, err) // "tls.ca_cert_file: ..."
	}
	return conf, nil
}

// ClientConfig loads t's files into a client TLS configuration (TLS 1.2 at
// least). Its errors name the key at fault. Ingest's "tls" is the same
// object.
func (t TLSConfig) ClientConfig() (*tls.Config, error) {
	conf := &tls.Config{InsecureSkipVerify: t.InsecureSkipVerify, ServerName: t.ServerName, MinVersion: tls.VersionTLS12} //nolint:gosec // the operator's choice, as rqlite's
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, errors.New("cert_file and key_file go together")
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cert_file, key_file: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	if t.CACertFile != "" {
		pem, err := os.ReadFile(t.CACertFile)
		if err != nil {
			return nil, fmt.Errorf("ca_cert_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_cert_file: %s holds no PEM certificate", t.CACertFile)
		}
		conf.RootCAs = pool
	}
	return conf, nil
}

// CaptureConfig is what the state machine needs to capture for c.
func (c Config) CaptureConfig(sink sm.ChangeSink) *sm.CaptureConfig {
	cc := &sm.CaptureConfig{Sink: sink, RowIDsOnly: c.RowIDsOnly}
	if c.TableFilter != "" {
		// Validate compiled it already.
		cc.TableFilter, _ = regexp.Compile(c.TableFilter)
	}
	return cc
}

// ParseConfig reads -cdc-config: an http(s) URL (a webhook with rqlite's
// defaults), "stdout", nats://host:port/SUBJECT, or the path of a JSON file
// with rqlite's keys (plus "nats"). Environment variables in the file are
// expanded ($VAR, ${VAR}), as rqlite does. The result has its defaults and
// is valid.
func ParseConfig(arg string) (Config, error) {
	var c Config
	switch {
	case arg == "":
		return c, invalid("-cdc-config", "is empty")
	case arg == StdoutEndpoint || strings.HasPrefix(arg, "http://") || strings.HasPrefix(arg, "https://") || strings.HasPrefix(arg, "nats://"):
		c.Endpoint = arg
	default:
		data, err := os.ReadFile(arg)
		if err != nil {
			return c, fmt.Errorf("%w: -cdc-config %q is not an http(s) URL, %q or nats:// URL, and cannot be read as a file: %w",
				ErrInvalidConfig, arg, StdoutEndpoint, err)
		}
		if c, err = parseFile([]byte(os.ExpandEnv(string(data)))); err != nil {
			return c, fmt.Errorf("-cdc-config %s: %w", arg, err)
		}
	}
	c = c.WithDefaults()
	return c, c.Validate()
}

// fileConfig is the JSON file: pointers tell a key given from one omitted.
type fileConfig struct {
	Endpoint              *string     `json:"endpoint"`
	ServiceID             *string     `json:"service_id"`
	RowIDsOnly            *bool       `json:"row_ids_only"`
	TableFilter           *string     `json:"table_filter"`
	TLS                   *TLSConfig  `json:"tls"`
	NATS                  *NATSConfig `json:"nats"`
	MaxBatchSize          *int        `json:"max_batch_size"`
	MaxBatchDelay         *string     `json:"max_batch_delay"`
	HighWatermarkInterval *string     `json:"high_watermark_interval"`
	TransmitTimeout       *string     `json:"transmit_timeout"`
	TransmitMaxRetries    *int        `json:"transmit_max_retries"`
	TransmitRetryPolicy   *string     `json:"transmit_retry_policy"`
	TransmitMinBackoff    *string     `json:"transmit_min_backoff"`
	TransmitMaxBackoff    *string     `json:"transmit_max_backoff"`
	BackfillTimeout       *string     `json:"backfill_timeout"`
}

func parseFile(data []byte) (Config, error) {
	var c Config
	var f fileConfig
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			return c, invalid(te.Field, "a %s cannot hold a JSON %s", te.Type, te.Value)
		case errors.As(err, &se):
			return c, fmt.Errorf("%w: not JSON (offset %d): %v", ErrInvalidConfig, se.Offset, err)
		case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
			return c, fmt.Errorf("%w: not JSON (truncated or empty): %v", ErrInvalidConfig, err)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return c, fmt.Errorf("%w: unknown key %s", ErrInvalidConfig, strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		return c, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	if dec.More() {
		return c, fmt.Errorf("%w: trailing data after the JSON object", ErrInvalidConfig)
	}
	if f.Endpoint == nil || *f.Endpoint == "" {
		return c, invalid("endpoint", "is required")
	}
	c.Endpoint = *f.Endpoint
	setStr(&c.ServiceID, f.ServiceID)
	setStr(&c.TableFilter, f.TableFilter)
	if f.RowIDsOnly != nil {
		c.RowIDsOnly = *f.RowIDsOnly
	}
	if f.TLS != nil {
		c.TLS = *f.TLS
	}
	if f.NATS != nil {
		c.NATS = *f.NATS
	}
	if f.MaxBatchSize != nil {
		if *f.MaxBatchSize < 1 {
			return c, invalid("max_batch_size", "%d is not positive", *f.MaxBatchSize)
		}
		c.MaxBatchSize = *f.MaxBatchSize
	}
	c.TransmitMaxRetries = f.TransmitMaxRetries
	for _, d := range []struct {
		key string
		v   *string
		dst *time.Duration
	}{
		{"max_batch_delay", f.MaxBatchDelay, &c.MaxBatchDelay},
		{"high_watermark_interval", f.HighWatermarkInterval, &c.HighWatermarkInterval},
		{"transmit_timeout", f.TransmitTimeout, &c.TransmitTimeout},
		{"transmit_min_backoff", f.TransmitMinBackoff, &c.TransmitMinBackoff},
		{"transmit_max_backoff", f.TransmitMaxBackoff, &c.TransmitMaxBackoff},
		{"backfill_timeout", f.BackfillTimeout, &c.BackfillTimeout},
	} {
		if d.v == nil {
			continue
		}
		v, err := time.ParseDuration(*d.v)
		if err != nil {
			return c, invalid(d.key, "%q is not a duration (e.g. \"250ms\", \"5s\")", *d.v)
		}
		if v <= 0 {
			return c, invalid(d.key, "%q is not positive", *d.v)
		}
		*d.dst = v
	}
	if p := f.TransmitRetryPolicy; p != nil {
		switch *p {
		case "LinearRetryPolicy":
			c.TransmitRetryPolicy = LinearRetryPolicy
		case "ExponentialRetryPolicy":
			c.TransmitRetryPolicy = ExponentialRetryPolicy
		default:
			return c, invalid("transmit_retry_policy", "%q is not LinearRetryPolicy or ExponentialRetryPolicy", *p)
		}
	}
	return c, nil
}

func setStr(dst *string, v *string) {
	if v != nil {
		*dst = *v
	}
}

// redactedEndpoint is the endpoint without its user information, for
// /status and logs.
func redactedEndpoint(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil || u.User == nil {
		return endpoint
	}
	u.User = nil
	return u.String()
}
