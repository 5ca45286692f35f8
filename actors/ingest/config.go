package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/skiffdb/skiff/actors/cdc"
)

// Defaults of the JSON config's optional keys.
const (
	// DefaultDurable is the durable consumer every node shares.
	DefaultDurable = "skiff"
	// DefaultMaxInFlight bounds the messages one node processes at once.
	DefaultMaxInFlight = 64
	// DefaultMaxDeliveries: a body that does not parse is dead-lettered at
	// its fifth delivery.
	DefaultMaxDeliveries = 5
	// DefaultAckWait: a message not acked (nor marked in progress) this
	// long after delivery is delivered again. A third of JetStream's own
	// default: a crashed node's messages wait less, and their redelivery
	// comes well within the state machine's dedup window (doc.go).
	DefaultAckWait = 10 * time.Second
	// DefaultNakDelay is the first redelivery delay after a failure; it
	// doubles with each delivery up to DefaultMaxNakDelay.
	DefaultNakDelay    = 100 * time.Millisecond
	DefaultMaxNakDelay = 5 * time.Second
	// DefaultFetchWait bounds one pull request: readiness is checked
	// between pulls, so a node that stops serving data stops fetching
	// within this long.
	DefaultFetchWait = 500 * time.Millisecond
	// DefaultReconnectWait is the pause between attempts to reach NATS.
	DefaultReconnectWait = time.Second
	// DefaultShutdownGrace bounds how long shutdown lets messages in flight
	// finish (apply, reply, ack) before cancelling them; a cancelled one is
	// redelivered, and its request ID makes that safe.
	DefaultShutdownGrace = 10 * time.Second
)

// Sentinel errors of package ingest.
var (
	// ErrInvalidConfig: a -ingest-config that cannot be used; the message
	// names the key.
	ErrInvalidConfig = errors.New("invalid ingest config")
)

// Config configures the ingest service (-ingest-config).
type Config struct {
	// ReadyChanged returns a channel closed when the node's readiness may
	// have changed (lifecycle's Changed): a node that may not fetch waits
	// on it. Nil: readiness is read again every readyPoll. Not a JSON key.
	ReadyChanged func() <-chan struct{}
	// URL is the NATS server URL, or a comma-separated list of them
	// (nats:// or tls://, user information allowed).
	URL string
	// Subject is the subject the consumer takes messages from (its filter);
	// wildcards allowed.
	Subject string
	// Stream is the JetStream stream holding Subject; empty: the stream
	// that captures Subject, found when the service binds.
	Stream string
	// Durable is the durable pull consumer's name, shared by every node.
	Durable string
	// CredentialsFile is a NATS .creds file (JWT and seed), optional.
	CredentialsFile string
	// MaxInFlight bounds the messages this node processes concurrently.
	MaxInFlight int
	// DeadLetterSubject receives messages that can never be applied (a
	// body that does not parse, a request too large for a Raft entry);
	// empty: they are terminated and logged only.
	DeadLetterSubject string
	// MaxDeliveries is the delivery at which a message that cannot be
	// applied is dead-lettered; before it, it is redelivered (to any node:
	// one running a newer version may parse it). 1 dead-letters at once.
	// It never applies to a write that failed for a transient reason (no
	// leader, timeout): those are redelivered until they apply.
	MaxDeliveries int
	// AckWait is the consumer's ack wait; a message in flight is marked in
	// progress well before it passes.
	AckWait time.Duration
	// NakDelay and MaxNakDelay bound the redelivery backoff after a
	// failure: NakDelay doubled per delivery, at most MaxNakDelay.
	NakDelay, MaxNakDelay time.Duration
	// FetchWait bounds one pull request.
	FetchWait time.Duration
	// ReconnectWait is the pause between attempts to reach NATS or bind the
	// consumer.
	ReconnectWait time.Duration
	// ShutdownGrace bounds the drain of messages in flight at shutdown.
	ShutdownGrace time.Duration
	// TLS configures TLS to NATS (the keys of rqlite's CDC tls object);
	// nil: TLS only if the URL's scheme is tls://, with the system's roots.
	TLS *TLSConfig
}

// TLSConfig is the JSON config's "tls" object: the same keys as rqlite's
// CDC "tls", loaded the same way.
type TLSConfig = cdc.TLSConfig

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.Durable == "" {
		c.Durable = DefaultDurable
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.MaxDeliveries == 0 {
		c.MaxDeliveries = DefaultMaxDeliveries
	}
	if c.AckWait == 0 {
		c.AckWait = DefaultAckWait
	}
	if c.NakDelay == 0 {
		c.NakDelay = DefaultNakDelay
	}
	if c.MaxNakDelay == 0 {
		c.MaxNakDelay = max(DefaultMaxNakDelay, c.NakDelay)
	}
	if c.FetchWait == 0 {
		c.FetchWait = DefaultFetchWait
	}
	if c.ReconnectWait == 0 {
		c.ReconnectWait = DefaultReconnectWait
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = DefaultShutdownGrace
	}
	return c
}

// Validate reports whether c is usable; the error names the key at fault
// (the JSON config's name for it).
func (c Config) Validate() error {
	bad := func(key, format string, a ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalidConfig, key, fmt.Sprintf(format, a...))
	}
	if c.URL == "" {
		return bad("url", "required")
	}
	for _, u := range strings.Split(c.URL, ",") {
		if _, err := serverURL(strings.TrimSpace(u)); err != nil {
			return bad("url", "%v", err)
		}
	}
	if err := validSubject(c.Subject, true); err != nil {
		return bad("subject", "%v", err)
	}
	if c.Stream != "" && strings.ContainsAny(c.Stream, ".*> \t\r\n") {
		return bad("stream", "%q: a stream name has no '.', '*', '>' or white space", c.Stream)
	}
	if c.Durable == "" || strings.ContainsAny(c.Durable, ".*> \t\r\n") {
		return bad("durable", "%q: a consumer name is not empty and has no '.', '*', '>' or white space", c.Durable)
	}
	if c.CredentialsFile != "" {
		if _, err := os.Stat(c.CredentialsFile); err != nil {
			return bad("credentials_file", "%v", err)
		}
	}
	if c.TLS != nil {
		if _, err := c.TLS.ClientConfig(); err != nil {
			return bad("tls", "%v", err)
		}
	}
	if c.MaxInFlight < 1 {
		return bad("max_in_flight", "%d, must be at least 1", c.MaxInFlight)
	}
	if c.DeadLetterSubject != "" {
		if err := validSubject(c.DeadLetterSubject, false); err != nil {
			return bad("dead_letter_subject", "%v", err)
		}
		// A dead letter taken by the consumer again would loop forever.
		if subjectMatches(c.Subject, c.DeadLetterSubject) {
			return bad("dead_letter_subject", "%q is matched by subject %q: dead letters would be consumed again", c.DeadLetterSubject, c.Subject)
		}
	}
	if c.MaxDeliveries < 1 {
		return bad("max_deliveries", "%d, must be at least 1", c.MaxDeliveries)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"ack_wait", c.AckWait}, {"nak_delay", c.NakDelay}, {"max_nak_delay", c.MaxNakDelay},
		{"fetch_wait", c.FetchWait}, {"reconnect_wait", c.ReconnectWait}, {"shutdown_grace", c.ShutdownGrace}} {
		if d.v <= 0 {
			return bad(d.key, "%s, must be positive", d.v)
		}
	}
	if c.AckWait < time.Second {
		// In-progress marks go out every third of it; shorter would flood
		// the server, and JetStream redelivers early under load.
		return bad("ack_wait", "%s, must be at least 1s", c.AckWait)
	}
	if c.MaxNakDelay < c.NakDelay {
		return bad("max_nak_delay", "%s is below nak_delay %s", c.MaxNakDelay, c.NakDelay)
	}
	return nil
}

// ParseConfig parses -ingest-config: either nats://host:port/SUBJECT (the
// stream capturing SUBJECT exists; durable consumer "skiff"; defaults for
// the rest) or the path of a JSON file of fileConfig's keys. The result has
// its defaults and is valid.
func ParseConfig(arg string) (Config, error) {
	arg = strings.TrimSpace(arg)
	if arg == "" {
		return Config{}, fmt.Errorf("%w: empty: want nats://host:port/SUBJECT or the path of a JSON file", ErrInvalidConfig)
	}
	var c Config
	if strings.Contains(arg, "://") {
		server, subject, err := splitURL(arg)
		if err != nil {
			return Config{}, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
		}
		if subject == "" {
			return Config{}, fmt.Errorf("%w: %s: no subject: want nats://host:port/SUBJECT", ErrInvalidConfig, redact(arg))
		}
		c = Config{URL: server, Subject: subject}
	} else {
		var err error
		if c, err = parseFile(arg); err != nil {
			return Config{}, err
		}
	}
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// fileConfig is the JSON file's shape. Durations are Go duration strings
// ("30s"), as in rqlite's configs.
type fileConfig struct {
	URL               string     `json:"url"`
	Subject           string     `json:"subject"`
	Stream            string     `json:"stream"`
	Durable           string     `json:"durable"`
	CredentialsFile   string     `json:"credentials_file"`
	MaxInFlight       int        `json:"max_in_flight"`
	DeadLetterSubject string     `json:"dead_letter_subject"`
	MaxDeliveries     int        `json:"max_deliveries"`
	AckWait           *string    `json:"ack_wait"`
	NakDelay          *string    `json:"nak_delay"`
	MaxNakDelay       *string    `json:"max_nak_delay"`
	FetchWait         *string    `json:"fetch_wait"`
	ReconnectWait     *string    `json:"reconnect_wait"`
	ShutdownGrace     *string    `json:"shutdown_grace"`
	TLS               *TLSConfig `json:"tls"`
}

func parseFile(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f fileConfig
	if err := dec.Decode(&f); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return Config{}, fmt.Errorf("%w: %s: %s: got a JSON %s, want %s", ErrInvalidConfig, path, typeErr.Field, typeErr.Value, typeErr.Type)
		}
		// Unknown keys: encoding/json's message names them.
		return Config{}, fmt.Errorf("%w: %s: %v", ErrInvalidConfig, path, err)
	}
	if dec.More() {
		return Config{}, fmt.Errorf("%w: %s: more than one JSON value", ErrInvalidConfig, path)
	}
	c := Config{Subject: f.Subject, Stream: f.Stream, Durable: f.Durable, CredentialsFile: f.CredentialsFile,
		MaxInFlight: f.MaxInFlight, DeadLetterSubject: f.DeadLetterSubject, MaxDeliveries: f.MaxDeliveries, TLS: f.TLS}
	if f.URL != "" {
		// The URL may carry the subject, as the flag's bare form does.
		var servers []string
		for _, u := range strings.Split(f.URL, ",") {
			server, subject, err := splitURL(strings.TrimSpace(u))
			if err != nil {
				return Config{}, fmt.Errorf("%w: %s: url: %v", ErrInvalidConfig, path, err)
			}
			if subject != "" {
				if c.Subject != "" && c.Subject != subject {
					return Config{}, fmt.Errorf("%w: %s: url: subject %q differs from subject %q", ErrInvalidConfig, path, subject, c.Subject)
				}
				c.Subject = subject
			}
			servers = append(servers, server)
		}
		c.URL = strings.Join(servers, ",")
	}
	for _, d := range []struct {
		key string
		s   *string
		dst *time.Duration
	}{{"ack_wait", f.AckWait, &c.AckWait}, {"nak_delay", f.NakDelay, &c.NakDelay}, {"max_nak_delay", f.MaxNakDelay, &c.MaxNakDelay},
		{"fetch_wait", f.FetchWait, &c.FetchWait}, {"reconnect_wait", f.ReconnectWait, &c.ReconnectWait},
		{"shutdown_grace", f.ShutdownGrace, &c.ShutdownGrace}} {
		if d.s == nil {
			continue
		}
		v, err := time.ParseDuration(*d.s)
		if err != nil || v <= 0 {
			return Config{}, fmt.Errorf("%w: %s: %s: %q is not a positive Go duration (\"30s\")", ErrInvalidConfig, path, d.key, *d.s)
		}
		*d.dst = v
	}
	for _, n := range []struct {
		key string
		v   int
	}{{"max_in_flight", f.MaxInFlight}, {"max_deliveries", f.MaxDeliveries}} {
		if n.v < 0 {
			return Config{}, fmt.Errorf("%w: %s: %s: %d, must be at least 1", ErrInvalidConfig, path, n.key, n.v)
		}
	}
	return c, nil
}

// splitURL splits nats://[user@]host:port[/SUBJECT] into the server URL and
// the subject ("" when there is none).
func splitURL(s string) (server, subject string, err error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", redact(s), errors.Unwrap(err))
	}
	subject = strings.TrimPrefix(u.Path, "/")
	if u.RawQuery != "" || u.Fragment != "" {
		return "", "", fmt.Errorf("%s: a query or fragment is not allowed", redact(s))
	}
	u.Path, u.RawPath = "", ""
	server = u.String()
	if _, err := serverURL(server); err != nil {
		return "", "", err
	}
	return server, subject, nil
}

// serverURL checks one NATS server URL.
func serverURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%s: not a URL", redact(s))
	}
	switch u.Scheme {
	case "nats", "tls":
	default:
		return nil, fmt.Errorf("%s: scheme %q, want nats:// or tls://", redact(s), u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("%s: no host", redact(s))
	}
	if p := strings.TrimPrefix(u.Path, "/"); p != "" {
		return nil, fmt.Errorf("%s: a server URL has no path", redact(s))
	}
	return u, nil
}

// redact hides a URL's password (and a token as user name) in messages and
// in /status.
func redact(s string) string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		u, err := url.Parse(strings.TrimSpace(part))
		if err != nil || u.User == nil {
			out = append(out, part)
			continue
		}
		u.User = url.User("redacted")
		out = append(out, u.String())
	}
	return strings.Join(out, ",")
}

// validSubject checks a NATS subject: dot-separated non-empty tokens, no
// white space; wildcards ("*" a token, ">" the last) only when allowed.
func validSubject(s string, wildcards bool) error {
	if s == "" {
		return errors.New("required")
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return fmt.Errorf("%q has white space", s)
	}
	toks := strings.Split(s, ".")
	for i, t := range toks {
		switch {
		case t == "":
			return fmt.Errorf("%q has an empty token", s)
		case t == "*" || (t == ">" && i == len(toks)-1):
			if !wildcards {
				return fmt.Errorf("%q: no wildcards allowed here", s)
			}
		case strings.ContainsAny(t, "*>"):
			return fmt.Errorf("%q: misplaced wildcard", s)
		}
	}
	return nil
}

// subjectMatches reports whether the literal subject s is matched by
// filter (NATS wildcards).
func subjectMatches(filter, s string) bool {
	f, t := strings.Split(filter, "."), strings.Split(s, ".")
	for i, ft := range f {
		if ft == ">" {
			return len(t) > i
		}
		if i >= len(t) || (ft != "*" && ft != t[i]) {
			return false
		}
	}
	return len(f) == len(t)
}
