package bootstrap

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Discovery modes (rqlited's -disco-mode).
const (
	DiscoDNS    = "dns"
	DiscoDNSSRV = "dns-srv"
)

// DiscoConfig is -disco-config for the DNS modes: rqlited's keys, plus
// Skiff's resolver.
type DiscoConfig struct {
	// Name is the DNS name to resolve: A/AAAA records (dns) or SRV
	// records (dns-srv).
	Name string `json:"name"`
	// Port is the Raft port of every node (dns; default 4002).
	Port int `json:"port"`
	// Service is the SRV service (dns-srv; default "rqlite-raft"): the
	// name looked up is _service._tcp.name.
	Service string `json:"service"`
	// Resolver, when set, is the DNS server (host:port) to ask instead of
	// the system's (Skiff).
	Resolver string `json:"resolver"`
}

// parseDiscoConfig reads -disco-config: a JSON object, or the path of a
// file holding one; environment variables are expanded (as rqlited).
func parseDiscoConfig(mode, s string) (DiscoConfig, error) {
	var dc DiscoConfig
	if s != "" && !strings.HasPrefix(strings.TrimSpace(s), "{") {
		b, err := os.ReadFile(s)
		if err != nil {
			return dc, fmt.Errorf("read -disco-config: %w", err)
		}
		s = string(b)
	}
	if s != "" {
		if err := json.Unmarshal([]byte(os.ExpandEnv(s)), &dc); err != nil {
			return dc, fmt.Errorf("-disco-config: %w", err)
		}
	}
	if dc.Name == "" {
		return dc, fmt.Errorf("-disco-config: \"name\" is required")
	}
	switch mode {
	case DiscoDNS:
		if dc.Port == 0 {
			dc.Port = 4002
		}
	case DiscoDNSSRV:
		if dc.Service == "" {
			dc.Service = "rqlite-raft"
		}
	default:
		return dc, fmt.Errorf("-disco-mode %q: want dns or dns-srv", mode)
	}
	return dc, nil
}

// resolver is the system's, or one that asks dc.Resolver only.
func (dc DiscoConfig) resolver() *net.Resolver {
	if dc.Resolver == "" {
		return net.DefaultResolver
	}
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, dc.Resolver)
	}}
}

// discover returns the Raft addresses the DNS records name, sorted.
func (dc DiscoConfig) discover(ctx context.Context, mode string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r := dc.resolver()
	var out []string
	switch mode {
	case DiscoDNS:
		ips, err := r.LookupHost(ctx, dc.Name)
		if err != nil {
			return nil, err
		}
		for _, ip := range ips {
			out = append(out, net.JoinHostPort(ip, strconv.Itoa(dc.Port)))
		}
	case DiscoDNSSRV:
		_, srvs, err := r.LookupSRV(ctx, dc.Service, "tcp", dc.Name)
		if err != nil {
			return nil, err
		}
		for _, s := range srvs {
			// Resolved here, by the same resolver: the HTTP client that
			// asks the peer would use the system's.
			ips, err := r.LookupHost(ctx, s.Target)
			if err != nil || len(ips) == 0 {
				continue
			}
			out = append(out, net.JoinHostPort(ips[0], strconv.Itoa(int(s.Port))))
		}
	}
	sort.Strings(out)
	return out, nil
}
