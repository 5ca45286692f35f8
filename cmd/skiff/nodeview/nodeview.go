package nodeview

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/skiffdb/skiff/cmd/skiff/clientcfg"
	"github.com/skiffdb/skiff/cmd/skiff/shell"
)

// ErrInvalidConfig wraps every Config.Validate failure.
var ErrInvalidConfig = errors.New("invalid status configuration")

// ErrNoNode is a frame in which no address answered.
var ErrNoNode = errors.New("no node answered")

// Defaults.
const (
	DefaultInterval = time.Second
	DefaultTimeout  = 2 * time.Second
)

// Config is what to watch and how to reach it.
type Config struct {
	// Addrs are host:port (or URLs) of nodes' HTTP APIs; the first that
	// answers /nodes names the cluster.
	Addrs       []string
	Scheme      string // http or https, for Addrs without one
	Credentials string // user:password for HTTP Basic auth
	// Config is the TLS client side, the shell's: -i, -c, -d and -k.
	clientcfg.Config
	// Timeout bounds each request; Interval is the redraw period.
	Timeout, Interval time.Duration
}

// DefaultConfig watches a node on localhost:4001.
func DefaultConfig() Config {
	return Config{Addrs: []string{"localhost:4001"}, Scheme: "http", Timeout: DefaultTimeout, Interval: DefaultInterval}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if len(c.Addrs) == 0 {
		return fmt.Errorf("%w: no address", ErrInvalidConfig)
	}
	if c.Scheme != "http" && c.Scheme != "https" {
		return fmt.Errorf("%w: scheme %q: want http or https", ErrInvalidConfig, c.Scheme)
	}
	if c.Credentials != "" && !strings.Contains(c.Credentials, ":") {
		return fmt.Errorf("%w: credentials: want username:password", ErrInvalidConfig)
	}
	if err := c.Config.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if c.Timeout <= 0 || c.Interval <= 0 {
		return fmt.Errorf("%w: timeout and interval must be positive", ErrInvalidConfig)
	}
	return nil
}

// Progress is /status lifecycle.progress (gateway/status.go).
type Progress struct {
	DBBytes         int64   `json:"db_bytes"`
	AppliedIndex    uint64  `json:"applied_index"`
	TargetIndex     uint64  `json:"target_index"`
	SnapshotBytes   int64   `json:"snapshot_bytes"`
	SnapshotTotal   int64   `json:"snapshot_total_bytes"`
	SentBytes       int64   `json:"sent_bytes"`
	SentTotal       int64   `json:"sent_total_bytes"`
	ReceivedBytes   int64   `json:"received_bytes"`
	LeaderSentTotal int64   `json:"leader_sent_total_bytes"`
	Step            string  `json:"step"`
	EntriesPerS     float64 `json:"entries_per_s"`
	ETASeconds      float64 `json:"eta_s"`
}

// Node is one row of the view.
type Node struct {
	ID, APIAddr, RaftAddr string
	// InNodes: /nodes named it (so Voter and Leader are known).
	InNodes, Voter, Leader bool
	Reachable              bool
	// Phase is lifecycle.state ("" for a node without Skiff's section).
	Phase    string
	Progress Progress
	Applied  uint64
	Err      string
}

// Role is leader, follower or non-voter.
func (n Node) Role() string {
	switch {
	case !n.InNodes:
		return "?"
	case n.Leader:
		return "leader"
	case n.Voter:
		return "follower"
	}
	return "non-voter"
}

// Frame is one sample of the cluster.
type Frame struct {
	At     time.Time
	Source string // the address whose /nodes listed the cluster
	Nodes  []Node
}

// Viewer gathers frames.
type Viewer struct {
	cfg Config
	hc  *http.Client
}

// New validates cfg.
func New(cfg Config) (*Viewer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tr, err := cfg.Config.Transport()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	hc := &http.Client{Timeout: cfg.Timeout, Transport: tr}
	return &Viewer{cfg: cfg, hc: hc}, nil
}

func (v *Viewer) baseURL(addr string) string {
	if strings.Contains(addr, "://") {
		return strings.TrimSuffix(addr, "/")
	}
	return v.cfg.Scheme + "://" + addr
}

func (v *Viewer) get(ctx context.Context, u string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if user, pass, ok := strings.Cut(v.cfg.Credentials, ":"); ok {
		req.SetBasicAuth(user, pass)
	}
	resp, err := v.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return json.Unmarshal(b, out)
}

type nodesDoc struct {
	Nodes []struct {
		ID       string `json:"id"`
		APIAddr  string `json:"api_addr"`
		Addr     string `json:"addr"`
		Voter    bool   `json:"voter"`
		Leader   bool   `json:"leader"`
		Reachabl bool   `json:"reachable"`
		Error    string `json:"error"`
	} `json:"nodes"`
}

type statusDoc struct {
	Store struct {
		NodeID   string `json:"node_id"`
		FSMIndex uint64 `json:"fsm_index"`
	} `json:"store"`
	Lifecycle *struct {
		State    string   `json:"state"`
		Progress Progress `json:"progress"`
	} `json:"lifecycle"`
}

// hostPort normalises an address or URL to host:port for matching.
func hostPort(a string) string {
	if u, err := url.Parse(a); err == nil && u.Host != "" {
		return u.Host
	}
	return a
}

// Gather samples the cluster once. Its error is ErrNoNode when nothing
// answered at all; unreachable nodes are rows, not errors.
func (v *Viewer) Gather(ctx context.Context) (Frame, error) {
	f := Frame{At: time.Now()}
	var nodes []Node
	for _, a := range v.cfg.Addrs {
		var d nodesDoc
		if err := v.get(ctx, v.baseURL(a)+"/nodes?nonvoters&ver=2", &d); err != nil {
			continue
		}
		f.Source = a
		for _, n := range d.Nodes {
			nodes = append(nodes, Node{ID: n.ID, APIAddr: n.APIAddr, RaftAddr: n.Addr, InNodes: true,
				Voter: n.Voter, Leader: n.Leader})
		}
		break
	}
	// Addresses /nodes did not name (a node still joining, or no /nodes
	// answer at all) are shown from their own /status.
	for _, a := range v.cfg.Addrs {
		known := false
		for _, n := range nodes {
			if n.APIAddr != "" && hostPort(n.APIAddr) == hostPort(a) {
				known = true
			}
		}
		if !known {
			nodes = append(nodes, Node{APIAddr: v.baseURL(a)})
		}
	}
	var wg sync.WaitGroup
	for i := range nodes {
		n := &nodes[i]
		if n.APIAddr == "" {
			n.Err = "no API address"
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var st statusDoc
			if err := v.get(ctx, v.baseURL(n.APIAddr)+"/status", &st); err != nil {
				n.Err = shortErr(err)
				return
			}
			n.Reachable = true
			if n.ID == "" {
				n.ID = st.Store.NodeID
			}
			n.Applied = st.Store.FSMIndex
			if st.Lifecycle != nil {
				n.Phase = st.Lifecycle.State
				n.Progress = st.Lifecycle.Progress
				n.Applied = st.Lifecycle.Progress.AppliedIndex
			}
		}()
	}
	wg.Wait()
	// Unknown IDs (an address that did not answer) go last.
	sort.SliceStable(nodes, func(i, j int) bool {
		if (nodes[i].ID == "") != (nodes[j].ID == "") {
			return nodes[j].ID == ""
		}
		return nodes[i].ID < nodes[j].ID
	})
	f.Nodes = nodes
	for _, n := range nodes {
		if n.Reachable {
			return f, nil
		}
	}
	if f.Source != "" {
		return f, nil
	}
	return f, ErrNoNode
}

// Render draws a frame as a table (the shell's table layout).
func Render(f Frame) string {
	var b bytes.Buffer
	src := f.Source
	if src == "" {
		src = "(no /nodes answer)"
	}
	fmt.Fprintf(&b, "Skiff cluster via %s at %s\n", src, f.At.Format("15:04:05"))
	rows := make([][]any, 0, len(f.Nodes))
	for _, n := range f.Nodes {
		reach := "yes"
		phase := n.Phase
		prog := ProgressText(n.Phase, n.Progress)
		applied := fmt.Sprint(n.Applied)
		if !n.Reachable {
			reach, phase, prog, applied = "no", "-", trim(n.Err, 40), "-"
		} else if phase == "" {
			phase = "-"
		}
		id := n.ID
		if id == "" {
			id = "?"
		}
		rows = append(rows, []any{id, hostPort(n.APIAddr), n.Role(), reach, phase, prog, applied})
	}
	shell.WriteTable(&b, []string{"id", "api addr", "role", "reachable", "phase", "progress", "applied"}, rows)
	return b.String()
}

// shortErr keeps what went wrong and drops the URL and dial details the
// table has no room for.
func shortErr(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

func trim(s string, n int) string {
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

// ProgressText says what a node is doing and how far along it is, with a
// text bar when the total is known.
func ProgressText(phase string, p Progress) string {
	var s string
	switch {
	case p.Step == "receiving_snapshot":
		s = "receiving snapshot " + bytesOf(p.ReceivedBytes, p.LeaderSentTotal)
	case p.Step == "installing_snapshot":
		s = "installing snapshot " + bytesOf(p.SnapshotBytes, p.SnapshotTotal)
	case p.Step == "replaying_log":
		s = "replaying " + entriesOf(p.AppliedIndex, p.TargetIndex)
	case p.SentTotal > 0 && p.SentBytes < p.SentTotal:
		s = "sending snapshot " + bytesOf(p.SentBytes, p.SentTotal)
	case phase == "opening":
		s = "opening " + humanBytes(p.DBBytes)
	case p.Step != "":
		s = strings.ReplaceAll(p.Step, "_", " ")
	case p.TargetIndex > p.AppliedIndex:
		s = "catching up " + entriesOf(p.AppliedIndex, p.TargetIndex)
	default:
		return "-"
	}
	if p.ETASeconds > 0 {
		s += fmt.Sprintf(" eta %s", (time.Duration(p.ETASeconds*10) * time.Second / 10).String())
	}
	return s
}

func bytesOf(done, total int64) string {
	if total <= 0 {
		return humanBytes(done)
	}
	return fmt.Sprintf("%s/%s %s", humanBytes(done), humanBytes(total), Bar(float64(done)/float64(total), 10))
}

func entriesOf(done, total uint64) string {
	if total == 0 {
		return fmt.Sprintf("%d entries", done)
	}
	return fmt.Sprintf("%d/%d entries %s", done, total, Bar(float64(done)/float64(total), 10))
}

// Bar is a text progress bar: "[####------] 40%".
func Bar(frac float64, width int) string {
	frac = min(max(frac, 0), 1)
	n := int(frac*float64(width) + 0.5)
	return fmt.Sprintf("[%s%s] %d%%", strings.Repeat("#", n), strings.Repeat("-", width-n), int(frac*100))
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
