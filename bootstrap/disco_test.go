package bootstrap

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParseDiscoConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "disco.json")
	if err := os.WriteFile(file, []byte(`{"name":"$SKIFF_TEST_NAME","service":"raft"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SKIFF_TEST_NAME", "from.env")
	for _, tc := range []struct {
		mode, cfg string
		want      DiscoConfig
		wantErr   bool
	}{
		{mode: "dns", cfg: `{"name":"rqlite.cluster"}`, want: DiscoConfig{Name: "rqlite.cluster", Port: 4002}},
		{mode: "dns", cfg: `{"name":"a","port":5002,"resolver":"127.0.0.1:53"}`, want: DiscoConfig{Name: "a", Port: 5002, Resolver: "127.0.0.1:53"}},
		{mode: "dns-srv", cfg: `{"name":"rqlite.local"}`, want: DiscoConfig{Name: "rqlite.local", Service: "rqlite-raft"}},
		{mode: "dns-srv", cfg: file, want: DiscoConfig{Name: "from.env", Service: "raft"}},
		{mode: "dns", cfg: `{}`, wantErr: true},
		{mode: "dns", cfg: `{"name":`, wantErr: true},
		{mode: "consul-kv", cfg: `{"name":"x"}`, wantErr: true},
		{mode: "dns", cfg: "/no/such/file", wantErr: true},
	} {
		got, err := parseDiscoConfig(tc.mode, tc.cfg)
		if (err != nil) != tc.wantErr || (!tc.wantErr && got != tc.want) {
			t.Errorf("parseDiscoConfig(%q, %q) = %+v, %v", tc.mode, tc.cfg, got, err)
		}
	}
}
