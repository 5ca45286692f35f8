package main

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/skiffdb/skiff/cmd/skiff/clientcfg"
	"github.com/skiffdb/skiff/cmd/skiff/nodeview"
	"github.com/skiffdb/skiff/cmd/skiff/shell"
)

func TestParseShell(t *testing.T) {
	t.Setenv("RQLITE_HOST", "https://db.example:4443")
	t.Setenv("RQLITE_HISTFILESIZE", "7")
	c, err := parseShell([]string{"-u", "bob:pw", "-a", "h1:1, h2:2", "-t", "5s", "-history", ""}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Scheme != "https" || c.Host != "db.example" || c.Port != 4443 {
		t.Errorf("RQLITE_HOST not applied: %+v", c)
	}
	if c.Credentials != "bob:pw" || !reflect.DeepEqual(c.Alternatives, []string{"h1:1", "h2:2"}) || c.Timeout != 5*time.Second || c.HistoryFile != "" {
		t.Errorf("flags: %+v", c)
	}
	if c.HistoryLimit != 7 {
		t.Errorf("RQLITE_HISTFILESIZE: limit %d", c.HistoryLimit)
	}
	t.Setenv("RQLITE_HISTFILESIZE", "0")
	if c, _ := parseShell(nil, io.Discard); c.HistoryFile != "" {
		t.Errorf("RQLITE_HISTFILESIZE=0 keeps history in %q", c.HistoryFile)
	}
	// A flag beats the environment.
	c, err = parseShell([]string{"-H", "10.0.0.1", "-p", "4001", "-s", "http"}, io.Discard)
	if err != nil || c.Host != "10.0.0.1" || c.Port != 4001 || c.Scheme != "http" {
		t.Errorf("flags over RQLITE_HOST: %+v %v", c, err)
	}
	if _, err := parseShell([]string{"-u", "nopassword"}, io.Discard); !errors.Is(err, shell.ErrInvalidConfig) {
		t.Errorf("bad -u: %v", err)
	}
}

func TestParseStatus(t *testing.T) {
	c, once, err := parseStatus([]string{"-a", "a:1,b:2", "-once", "-n", "250ms"}, io.Discard)
	if err != nil || !once || !reflect.DeepEqual(c.Addrs, []string{"a:1", "b:2"}) || c.Interval != 250*time.Millisecond {
		t.Errorf("%+v %v %v", c, once, err)
	}
}

// shell and status take the same TLS flags into the same clientcfg.Config,
// and refuse half a client pair alike.
func TestTLSFlagsShared(t *testing.T) {
	tlsArgs := []string{"-i", "-c", "ca.pem", "-d", "c.pem", "-k", "k.pem"}
	want := clientcfg.Config{Insecure: true, CACert: "ca.pem", ClientCert: "c.pem", ClientKey: "k.pem"}
	sc, err := parseShell(tlsArgs, io.Discard)
	if err != nil || sc.Config != want {
		t.Errorf("shell: %+v %v", sc.Config, err)
	}
	vc, _, err := parseStatus(tlsArgs, io.Discard)
	if err != nil || vc.Config != want {
		t.Errorf("status: %+v %v", vc.Config, err)
	}
	if _, err := parseShell([]string{"-d", "c.pem"}, io.Discard); !errors.Is(err, shell.ErrInvalidConfig) || !errors.Is(err, clientcfg.ErrInvalidConfig) {
		t.Errorf("shell -d alone: %v", err)
	}
	if _, _, err := parseStatus([]string{"-d", "c.pem"}, io.Discard); !errors.Is(err, nodeview.ErrInvalidConfig) || !errors.Is(err, clientcfg.ErrInvalidConfig) {
		t.Errorf("status -d alone: %v", err)
	}
}

func TestUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(nil, &out, &errb); code != 2 || !bytes.Contains(errb.Bytes(), []byte("shell")) {
		t.Errorf("no command: %d %q", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"frobnicate"}, &out, &errb); code != 2 || !bytes.Contains(errb.Bytes(), []byte(`unknown command "frobnicate"`)) {
		t.Errorf("unknown command: %d %q", code, errb.String())
	}
}
