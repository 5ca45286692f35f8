package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// flood keeps n connections from the loopback IP local open against addr
// until the returned function is called, redialling as they are refused or
// cut; each opens with one of openers (silent, slow HTTP headers, a Raft
// magic and nothing more) and then says nothing.
func flood(local, addr string, n int, openers []string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: time.Second}
			for {
				select {
				case <-done:
					return
				default:
				}
				c, err := d.Dial("tcp", addr)
				if err != nil {
					time.Sleep(20 * time.Millisecond) // refused: redial without spinning
					continue
				}
				_, _ = io.WriteString(c, openers[i%len(openers)])
				closed := make(chan struct{})
				go func() { _, _ = io.Copy(io.Discard, c); close(closed) }()
				select {
				case <-done:
				case <-closed:
				}
				c.Close()
			}
		}()
	}
	return func() { close(done); wg.Wait() }
}

// muxStatus is the part of /status mux and http this test reads.
type muxStatus struct {
	Mux struct {
		Addr    string            `json:"addr"`
		Timeout string            `json:"timeout"`
		Refused map[string]uint64 `json:"refused"`
	} `json:"mux"`
	HTTP struct {
		Refused uint64 `json:"conns_refused"`
	} `json:"http"`
}

func fetchMuxStatus(t *testing.T, m *member) muxStatus {
	t.Helper()
	r := m.get("/status")
	var st muxStatus
	if r.status != http.StatusOK {
		t.Fatalf("/status on %s: %s", m.id, r)
	}
	if err := json.Unmarshal(r.body, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// A flood of idle and slow-loris connections from another host against
// every member's Raft port (and the leader's HTTP port), past the per-IP
// caps, while writes go on: every write is acknowledged and replicated,
// and /status counts the refusals on both ports.
func TestPortCapsFloodWhileWriting(t *testing.T) {
	const raftPerIP, httpPerIP = 8, 16
	c := newClusterWith(t, 3, func(m *member) {
		m.args = append(m.args, "-raft-max-conns-per-ip", fmt.Sprint(raftPerIP), "-http-max-conns-per-ip", fmt.Sprint(httpPerIP))
	})
	leader := c.leader
	wantOK(t, "CREATE TABLE", leader.execute(createT), `{"results":[{}]}`)

	raftOpeners := []string{"", "GET /skiff/node HTTP/1.1\r\nHost: x\r\n", "\xae"}
	for _, m := range c.ms {
		defer flood("127.0.0.2", m.raftAddr, 2*raftPerIP, raftOpeners)()
	}
	defer flood("127.0.0.3", leader.httpAddr, 2*httpPerIP, []string{"", "GET /status HTTP/1.1\r\n"})()

	deadline := time.Now().Add(30 * time.Second)
	for {
		st := fetchMuxStatus(t, leader)
		if st.Mux.Refused["per_ip_cap"] > 0 && st.HTTP.Refused > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the floods never reached the caps: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var rs rows
	began := time.Now()
	for i := range 30 {
		rs.insert(t, leader, fmt.Sprintf("v%d", i))
	}
	t.Logf("30 writes under the flood took %s", time.Since(began).Round(time.Millisecond))
	for _, m := range others(c.ms, leader) {
		waitRows(t, m, rs, "level=none")
	}
	for _, m := range c.ms {
		st := fetchMuxStatus(t, m)
		if st.Mux.Addr != m.raftAddr || st.Mux.Timeout == "" || st.Mux.Refused["per_ip_cap"] == 0 {
			t.Errorf("%s: /status mux %+v", m.id, st.Mux)
		}
	}
}
