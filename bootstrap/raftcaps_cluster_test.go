package bootstrap

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/skiffdb/skiff/actors/lifecycle"
)

// A flood of idle and slow-loris connections from another host
// (127.0.0.2) against the members' Raft ports, past the per-IP cap, never
// starves Raft traffic between members: every write is acknowledged and
// replicated, and /status mux counts the refusals.
func TestRaftPortFloodKeepsReplicating(t *testing.T) {
	const perIP = 8
	start := func(id string, join []string) *Node {
		t.Helper()
		n, err := Start(Config{DataDir: t.TempDir(), HTTPAddr: freeAddr(t), RaftAddr: freeAddr(t), NodeID: id,
			Join: join, Logger: zap.NewNop(), RaftMaxConnsPerIP: perIP})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := n.Shutdown(); err != nil {
				t.Error(err)
			}
		})
		waitPhase(t, n, lifecycle.Ready)
		return n
	}
	n1 := start("n1", nil)
	n2 := start("n2", []string{n1.cfg.RaftAddr})
	n3 := start("n3", []string{n1.cfg.RaftAddr})
	nodes := []*Node{n1, n2, n3}
	client := &http.Client{Timeout: 30 * time.Second}
	post := func(n *Node, path, body string) string {
		t.Helper()
		resp, err := client.Post("http://"+n.HTTPAddr().String()+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || strings.Contains(string(b), `"error"`) {
			t.Fatalf("%s %s: %d %s", path, body, resp.StatusCode, b)
		}
		return string(b)
	}
	post(n1, "/db/execute", `["CREATE TABLE t (v INTEGER)"]`)

	// The flood: every member's Raft port, from 127.0.0.2, redialled as
	// connections are refused or cut: silent ones, slow HTTP headers, and
	// a Raft magic followed by nothing.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	openers := []string{"", "GET /skiff/node HTTP/1.1\r\nHost: x\r\n", "\xae"}
	for _, n := range nodes {
		for i := range 2 * perIP {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: time.Second}
				for {
					select {
					case <-stop:
						return
					default:
					}
					c, err := d.Dial("tcp", n.cfg.RaftAddr)
					if err != nil {
						time.Sleep(20 * time.Millisecond) // refused: redial, not a busy loop
						continue
					}
					_, _ = io.WriteString(c, openers[i%len(openers)])
					done := make(chan struct{})
					go func() { _, _ = io.Copy(io.Discard, c); close(done) }()
					select {
					case <-stop:
					case <-done:
					}
					c.Close()
				}
			}()
		}
	}
	defer func() { close(stop); wg.Wait() }()

	// Wait until the flood hits the per-IP cap on the leader.
	deadline := time.Now().Add(20 * time.Second)
	for n1.mux.status().(map[string]any)["refused"].(map[string]uint64)["per_ip_cap"] == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the flood never reached the per-IP cap")
		}
		time.Sleep(20 * time.Millisecond)
	}
	const writes = 40
	for i := range writes {
		post(n1, "/db/execute", fmt.Sprintf(`["INSERT INTO t (v) VALUES (%d)"]`, i))
	}
	for _, n := range nodes {
		deadline := time.Now().Add(20 * time.Second)
		for {
			b := post(n, "/db/query?level=none", `["SELECT COUNT(*) FROM t"]`)
			if strings.Contains(b, fmt.Sprintf(`[[%d]]`, writes)) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s after 20 s, want %d rows", n.cfg.NodeID, b, writes)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// /status mux shows the refusals.
	resp, err := client.Get("http://" + n1.HTTPAddr().String() + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Mux struct {
			Addr      string            `json:"addr"`
			Open      int               `json:"conns_open"`
			PerIP     int               `json:"max_conns_per_ip"`
			Refused   map[string]uint64 `json:"refused"`
			Total     uint64            `json:"refused_total"`
			MemberIPs int               `json:"member_ips"`
		} `json:"mux"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc.Mux.Addr != n1.cfg.RaftAddr || doc.Mux.PerIP != perIP || doc.Mux.Refused["per_ip_cap"] == 0 || doc.Mux.Total < doc.Mux.Refused["per_ip_cap"] {
		t.Fatalf("status mux %+v", doc.Mux)
	}
	// The members' Raft addresses are all on 127.0.0.1: one member IP,
	// learnt from the membership as it changes.
	deadline = time.Now().Add(20 * time.Second)
	for n1.mux.status().(map[string]any)["member_ips"] != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("member_ips %v, want 1", n1.mux.status().(map[string]any)["member_ips"])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
