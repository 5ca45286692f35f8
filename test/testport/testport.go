package testport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
)

// Below Linux's default ephemeral range (32768-60999), and above the ports
// services usually hold.
const (
	lowest  = 20000
	highest = 32767
)

var (
	mu    sync.Mutex
	given = map[int]bool{}
)

// Addr returns a 127.0.0.1 address whose port was free when checked and
// is not one this process handed out before.
func Addr(tb testing.TB) string {
	tb.Helper()
	for range 1000 {
		port := lowest + rand.IntN(highest-lowest+1)
		mu.Lock()
		taken := given[port]
		given[port] = true
		mu.Unlock()
		if taken {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // someone holds it
		}
		addr := ln.Addr().String()
		if err := ln.Close(); err != nil {
			tb.Fatalf("testport: %v", err)
		}
		return addr
	}
	tb.Fatal("testport: no free port below the ephemeral range")
	return ""
}
