package tlsreload

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// A CA file without a PEM certificate is refused with ErrNoCA; a missing
// one with the read error.
func TestLoadCAPool(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCAPool(path); !errors.Is(err, ErrNoCA) {
		t.Fatalf("no PEM: %v, want %v", err, ErrNoCA)
	}
	if _, err := LoadCAPool(filepath.Join(t.TempDir(), "missing.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}
