package testport

import (
	"net"
	"strconv"
	"testing"
)

// Addresses are distinct, below the ephemeral range, and bindable.
func TestAddr(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		a := Addr(t)
		if seen[a] {
			t.Fatalf("%s handed out twice", a)
		}
		seen[a] = true
		_, p, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatal(err)
		}
		port, _ := strconv.Atoi(p)
		if port < lowest || port > highest {
			t.Fatalf("port %d outside [%d, %d]", port, lowest, highest)
		}
	}
	for a := range seen {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("%s: %v", a, err)
		}
		ln.Close()
		break
	}
}
