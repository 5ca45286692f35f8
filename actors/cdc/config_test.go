package cdc

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffdb/skiff/test/testcert"
)

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseConfigForms(t *testing.T) {
	for _, tc := range []struct {
		arg  string
		kind SinkKind
	}{
		{"http://127.0.0.1:8000/cdc", SinkWebhook},
		{"https://user:pass@example.com:443/webhook", SinkWebhook},
		{"stdout", SinkStdout},
		{"nats://127.0.0.1:4222/cdc.events", SinkNATS},
	} {
		c, err := ParseConfig(tc.arg)
		if err != nil {
			t.Fatalf("%s: %v", tc.arg, err)
		}
		if c.Endpoint != tc.arg || c.Kind() != tc.kind {
			t.Fatalf("%s: endpoint %q kind %d", tc.arg, c.Endpoint, c.Kind())
		}
		// rqlite's defaults.
		if c.MaxBatchSize != 100 || c.MaxBatchDelay != time.Second || c.HighWatermarkInterval != 5*time.Second ||
			c.TransmitTimeout != 5*time.Second || c.TransmitMaxRetries != nil || c.TransmitRetryPolicy != LinearRetryPolicy ||
			c.TransmitMinBackoff != time.Second || c.TransmitMaxBackoff != time.Minute || c.RowIDsOnly || c.ServiceID != "" {
			t.Fatalf("%s: defaults %+v", tc.arg, c)
		}
	}
}

func TestParseConfigFileEveryKey(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	cert, key := testcert.Write(t, dir)
	if err := os.WriteFile(ca, mustRead(t, cert), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CDC_SERVICE", "prod-eu-cluster")
	p := writeFile(t, "cdc.json", `{
  "endpoint": "https://webhook.example.com/cdc",
  "service_id": "${CDC_SERVICE}",
  "row_ids_only": true,
  "table_filter": "^(users|orders|inventory)$",
  "tls": {"ca_cert_file": "`+ca+`", "cert_file": "`+cert+`", "key_file": "`+key+`",
          "insecure_skip_verify": true, "server_name": "webhook.example.com"},
  "max_batch_size": 500,
  "max_batch_delay": "250ms",
  "high_watermark_interval": "1s",
  "transmit_timeout": "7s",
  "transmit_max_retries": 8,
  "transmit_retry_policy": "ExponentialRetryPolicy",
  "transmit_min_backoff": "100ms",
  "transmit_max_backoff": "5s"
}`)
	c, err := ParseConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Endpoint != "https://webhook.example.com/cdc" || c.ServiceID != "prod-eu-cluster" || !c.RowIDsOnly ||
		c.TableFilter != "^(users|orders|inventory)$" || c.MaxBatchSize != 500 || c.MaxBatchDelay != 250*time.Millisecond ||
		c.HighWatermarkInterval != time.Second || c.TransmitTimeout != 7*time.Second || c.TransmitMaxRetries == nil ||
		*c.TransmitMaxRetries != 8 || c.TransmitRetryPolicy != ExponentialRetryPolicy ||
		c.TransmitMinBackoff != 100*time.Millisecond || c.TransmitMaxBackoff != 5*time.Second {
		t.Fatalf("parsed %+v", c)
	}
	if c.TLS != (TLSConfig{CACertFile: ca, CertFile: cert, KeyFile: key, InsecureSkipVerify: true, ServerName: "webhook.example.com"}) {
		t.Fatalf("tls %+v", c.TLS)
	}
	tc, err := c.tlsConfig()
	if err != nil || tc == nil || tc.RootCAs == nil || len(tc.Certificates) != 1 || !tc.InsecureSkipVerify || tc.ServerName != "webhook.example.com" {
		t.Fatalf("tls config %v %v", tc, err)
	}
	cc := c.CaptureConfig(nil)
	if !cc.RowIDsOnly || cc.TableFilter == nil || !cc.TableFilter.MatchString("users") || cc.TableFilter.MatchString("users2") {
		t.Fatalf("capture config %+v", cc)
	}
}

func TestParseConfigFileMinimalAndNATS(t *testing.T) {
	c, err := ParseConfig(writeFile(t, "a.json", `{"endpoint": "http://localhost:8000/x"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxBatchSize != DefaultMaxBatchSize || c.TransmitMinBackoff != DefaultTransmitMinBackoff {
		t.Fatalf("defaults not applied: %+v", c)
	}
	creds := writeFile(t, "x.creds", "creds")
	c, err = ParseConfig(writeFile(t, "b.json", `{"endpoint": "nats://127.0.0.1:4222/cdc.out", "nats": {"stream": "CDC", "credentials_file": "`+creds+`"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Kind() != SinkNATS || c.NATS.Stream != "CDC" || c.NATS.CredentialsFile != creds {
		t.Fatalf("nats %+v", c)
	}
	server, subject, err := natsTarget(c.Endpoint)
	if err != nil || server != "nats://127.0.0.1:4222" || subject != "cdc.out" {
		t.Fatalf("target %q %q %v", server, subject, err)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, arg, file, want string
	}{
		{name: "empty", arg: "", want: "-cdc-config: is empty"},
		{name: "missing file", arg: "/nonexistent/cdc.json", want: "cannot be read as a file"},
		{name: "http no host", arg: "http://", want: "endpoint"},
		{name: "nats no subject", arg: "nats://127.0.0.1:4222", want: "no subject"},
		{name: "nats no port", arg: "nats://127.0.0.1/x", want: "nats://host:port/SUBJECT"},
		{name: "nats wildcard", arg: "nats://127.0.0.1:4222/a.*", want: "not a NATS subject"},
		{name: "nats empty token", arg: "nats://127.0.0.1:4222/a..b", want: "not a NATS subject"},
		{name: "not json", file: `{"endpoint": `, want: "not JSON"},
		{name: "unknown key", file: `{"endpoint": "stdout", "log_only": true}`, want: `unknown key "log_only"`},
		{name: "unknown tls key", file: `{"endpoint": "https://x/y", "tls": {"skip_verify": true}}`, want: `unknown key "skip_verify"`},
		{name: "no endpoint", file: `{"service_id": "a"}`, want: "endpoint: is required"},
		{name: "bad endpoint", file: `{"endpoint": "ftp://x/y"}`, want: "endpoint: \"ftp://x/y\" is not"},
		{name: "wrong type", file: `{"endpoint": "stdout", "max_batch_size": "10"}`, want: "max_batch_size: a int cannot hold a JSON string"},
		{name: "zero batch", file: `{"endpoint": "stdout", "max_batch_size": 0}`, want: "max_batch_size: 0 is not positive"},
		{name: "bad duration", file: `{"endpoint": "stdout", "max_batch_delay": "soon"}`, want: "max_batch_delay: \"soon\" is not a duration"},
		{name: "number duration", file: `{"endpoint": "stdout", "transmit_timeout": 5}`, want: "transmit_timeout: a string cannot hold a JSON number"},
		{name: "negative duration", file: `{"endpoint": "stdout", "high_watermark_interval": "-1s"}`, want: "high_watermark_interval"},
		{name: "bad policy", file: `{"endpoint": "stdout", "transmit_retry_policy": "exponential"}`, want: "transmit_retry_policy: \"exponential\""},
		{name: "negative retries", file: `{"endpoint": "stdout", "transmit_max_retries": -1}`, want: "transmit_max_retries: -1 is negative"},
		{name: "max below min", file: `{"endpoint": "stdout", "transmit_min_backoff": "2s", "transmit_max_backoff": "1s"}`, want: "transmit_max_backoff"},
		{name: "bad regexp", file: `{"endpoint": "stdout", "table_filter": "("}`, want: "table_filter"},
		{name: "tls on http", file: `{"endpoint": "http://x/y", "tls": {"insecure_skip_verify": true}}`, want: "tls: is set but the endpoint"},
		{name: "tls unreadable ca", file: `{"endpoint": "https://x/y", "tls": {"ca_cert_file": "/nonexistent/ca.pem"}}`, want: "tls.ca_cert_file"},
		{name: "tls cert without key", file: `{"endpoint": "https://x/y", "tls": {"cert_file": "/nonexistent/c.pem"}}`, want: "cert_file and key_file"},
		{name: "tls unreadable cert", file: `{"endpoint": "https://x/y", "tls": {"cert_file": "/nonexistent/c.pem", "key_file": "/nonexistent/k.pem"}}`, want: "tls.cert_file"},
		{name: "nats on webhook", file: `{"endpoint": "http://x/y", "nats": {"stream": "S"}}`, want: "nats: is set but"},
		{name: "nats creds unreadable", file: `{"endpoint": "nats://h:1/s", "nats": {"credentials_file": "/nonexistent"}}`, want: "nats.credentials_file"},
		{name: "trailing", file: `{"endpoint": "stdout"} {}`, want: "trailing data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			arg := tc.arg
			if tc.file != "" {
				arg = writeFile(t, "cdc.json", tc.file)
			}
			_, err := ParseConfig(arg)
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseConfig: %v, want %q", err, tc.want)
			}
		})
	}
}

func TestRedactedEndpoint(t *testing.T) {
	if got := redactedEndpoint("https://user:secret@example.com/cdc"); got != "https://example.com/cdc" {
		t.Fatal(got)
	}
	if got := redactedEndpoint("stdout"); got != "stdout" {
		t.Fatal(got)
	}
}
