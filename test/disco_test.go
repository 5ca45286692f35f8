package test

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"

	"github.com/skiffdb/skiff/test/testport"
)

// dnsServer is a DNS server on loopback that answers from a record table
// the test fills in (A and SRV).
type dnsServer struct {
	mu   sync.Mutex
	a    map[string][]string   // name -> IPs
	srv  map[string][]*dns.SRV // name -> records
	addr string
	s    *dns.Server
}

func startDNS(t *testing.T) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &dnsServer{a: map[string][]string{}, srv: map[string][]*dns.SRV{}, addr: pc.LocalAddr().String()}
	d.s = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(d.serve)}
	go func() { _ = d.s.ActivateAndServe() }()
	t.Cleanup(func() { _ = d.s.Shutdown() })
	return d
}

func (d *dnsServer) serve(w dns.ResponseWriter, req *dns.Msg) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	for _, q := range req.Question {
		switch q.Qtype {
		case dns.TypeA:
			for _, ip := range d.a[q.Name] {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1}, A: net.ParseIP(ip)})
			}
		case dns.TypeSRV:
			for _, r := range d.srv[q.Name] {
				m.Answer = append(m.Answer, r)
			}
		}
	}
	_ = w.WriteMsg(m)
}

// TestClusterDNSDiscovery: -disco-mode dns-srv and dns with
// -bootstrap-expect find the founding voters through DNS records served by
// a resolver the test runs (API.md 5, "Auto-clustering"); Skiff's
// "resolver" key in -disco-config points the nodes at it.
func TestClusterDNSDiscovery(t *testing.T) {
	t.Run("dns-srv", func(t *testing.T) {
		d := startDNS(t)
		c := &cluster{t: t}
		for i := 1; i <= 3; i++ {
			m := c.add(fmt.Sprintf("n%d", i))
			host, port, _ := net.SplitHostPort(m.raftAddr)
			target := fmt.Sprintf("n%d.skiff.test.", i)
			p, _ := strconv.Atoi(port)
			d.mu.Lock()
			d.a[target] = []string{host}
			d.srv["_rqlite-raft._tcp.skiff.test."] = append(d.srv["_rqlite-raft._tcp.skiff.test."], &dns.SRV{
				Hdr:    dns.RR_Header{Name: "_rqlite-raft._tcp.skiff.test.", Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 1},
				Target: target, Port: uint16(p), Priority: 1, Weight: 1})
			d.mu.Unlock()
		}
		cfg := fmt.Sprintf(`{"name":"skiff.test","service":"rqlite-raft","resolver":%q}`, d.addr)
		for _, m := range c.ms {
			m.setFlags("-bootstrap-expect", "3", "-disco-mode", "dns-srv", "-disco-config", cfg)
			m.start()
		}
		t.Cleanup(c.stopAll)
		checkFormed(t, c)
	})
	t.Run("dns", func(t *testing.T) {
		// A records carry no port: every node uses the same Raft port, on
		// its own loopback address.
		d := startDNS(t)
		c := &cluster{t: t}
		_, port, _ := net.SplitHostPort(testport.Addr(t))
		for i := 1; i <= 3; i++ {
			m := c.add(fmt.Sprintf("n%d", i))
			ip := fmt.Sprintf("127.0.0.%d", 10+i)
			m.raftAddr = net.JoinHostPort(ip, port)
			d.mu.Lock()
			d.a["skiff.test."] = append(d.a["skiff.test."], ip)
			d.mu.Unlock()
		}
		cfg := fmt.Sprintf(`{"name":"skiff.test","port":%s,"resolver":%q}`, port, d.addr)
		for _, m := range c.ms {
			m.setFlags("-bootstrap-expect", "3", "-disco-mode", "dns", "-disco-config", cfg)
			m.start()
		}
		t.Cleanup(c.stopAll)
		checkFormed(t, c)
	})
}

// checkFormed waits for c to be one cluster of voters, checks a write
// through every member reaches every member, and returns the rows written.
func checkFormed(t *testing.T, c *cluster) rows {
	t.Helper()
	for _, m := range c.ms {
		m.waitReady(clusterTimeout)
	}
	leader := c.byID(c.waitMembers(c.ms, c.ids(), nil))
	wantOK(t, "CREATE TABLE", leader.execute(createT), `{"results":[{}]}`)
	var rs rows
	for _, m := range c.ms {
		rs.insert(t, m, "via-"+m.id)
	}
	for _, m := range c.ms {
		wantOK(t, "linearizable read on "+m.id, m.get(selectPath("level=linearizable")), rs.body())
	}
	if !strings.Contains(rs.body(), "via-n3") {
		t.Fatalf("rows = %s", rs.body())
	}
	return rs
}
