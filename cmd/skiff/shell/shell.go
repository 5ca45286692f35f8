package shell

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// helpLines is rqlite's CLI help (cmd/rqlite/main.go), printed sorted.
var helpLines = []string{
	`.backup <path to file>              Write database backup to a file`,
	`.boot <path to file>                Boot the node from a SQLite database file`,
	`.consistency [level]                Show or set read consistency level (none, weak, linearizable, strong, auto)`,
	`.dump <path to file> [tables...]    Dump the database in SQL text format to a file`,
	`.exit                               Exit this program`,
	`.expvar                             Show expvar (Go runtime) information for connected node`,
	`.help                               Show this message`,
	`.indexes                            Show names of all indexes`,
	`.leader                             Show the leader node`,
	`.nodes [all]                        Show connection status of all nodes in cluster`,
	`.ready                              Show ready status for connected node`,
	`.reap                               Remove unreachable nodes (the leader's -raft-reap rules)`,
	`.remove <node ID>                   Remove a node from the cluster`,
	`.restore <path to file>             Load the database from a SQLite database file or dump file`,
	`.schema                             Show CREATE statements for all tables`,
	`.snapshot [trailing logs]           Trigger a Raft snapshot on the connected node`,
	`.status [key]                       Show status and diagnostic information for connected node`,
	`.stepdown [node ID]                 Ask the leader to hand leadership to another node`,
	`.sysdump <path to file>             Dump system diagnostics to a file for offline analysis`,
	`.tables                             List names of tables`,
	`.timer on|off                       Turn query timings on or off`,
}

// notInternal leaves out Skiff's own bookkeeping tables (sm's
// internalTables, all named __skiff_*), which its backups leave out too;
// on rqlite it matches every table. rqlite's CLI queries sqlite_master
// unfiltered; the NULL sql of automatic indexes is left out of .schema as
// sqlite3 does.
const notInternal = `tbl_name NOT LIKE '\_\_skiff\_%' ESCAPE '\'`

// levels are the read consistency levels .consistency accepts (API.md 1.2).
var levels = []string{"none", "weak", "linearizable", "strong", "auto"}

// Shell is one session against a node: its settings and its output. Exec
// is synchronous; Run drives it from a terminal.
type Shell struct {
	cfg         Config
	c           *client
	out         io.Writer
	timer       bool
	consistency string
	version     string
}

// New validates cfg and prepares a shell that prints to out.
func New(cfg Config, out io.Writer) (*Shell, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c, err := newClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return &Shell{cfg: cfg, c: c, out: out, consistency: "weak"}, nil
}

// Connect asks the node for /status and reads its version from the
// X-Rqlite-Version header, as rqlite's CLI does at startup.
func (s *Shell) Connect(ctx context.Context) error {
	r, err := s.c.do(ctx, http.MethodGet, "/status", nil, "", nil)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			//lint:ignore ST1005 rqlite's CLI message, word for word
			return fmt.Errorf("Unable to connect to rqlited at %s://%s - is it running?", s.cfg.Scheme, s.cfg.addr())
		}
		return err
	}
	s.version = r.header.Get("X-Rqlite-Version")
	if s.version == "" {
		s.version = "unknown"
	}
	return nil
}

// Banner is the greeting after Connect.
func (s *Shell) Banner() string {
	return fmt.Sprintf("Welcome to the Skiff shell (rqlite-compatible).\nEnter \".help\" for usage hints.\nConnected to %s://%s running version %s\n",
		s.cfg.Scheme, s.c.host(), s.version)
}

// Prompt is rqlite's "host:port>", naming the host in use now.
func (s *Shell) Prompt() string { return s.c.host() + "> " }

// Exec runs one input and prints its outcome; failures are printed as
// rqlite's CLI prints them ("ERR! ..."), and the session goes on. It
// reports whether the input asks to quit.
func (s *Shell) Exec(ctx context.Context, in Input) (quit bool) {
	var err error
	if in.Kind == KindSQL {
		err = s.request(ctx, in.SQL)
	} else {
		quit, err = s.dot(ctx, in)
	}
	if err != nil {
		fmt.Fprintf(s.out, "ERR! %v\n", err)
	}
	return quit
}

func (s *Shell) dot(ctx context.Context, in Input) (bool, error) {
	arg := strings.Join(in.Args, " ")
	need := func(what string) error {
		if arg == "" {
			return fmt.Errorf("please specify %s", what)
		}
		return nil
	}
	switch in.Cmd {
	case "exit", "quit":
		return true, nil
	case "help":
		lines := append([]string(nil), helpLines...)
		sort.Strings(lines)
		fmt.Fprintln(s.out, strings.Join(lines, "\n"))
	case "tables":
		return false, s.query(ctx, `SELECT name FROM sqlite_master WHERE type='table' AND `+notInternal)
	case "indexes":
		return false, s.query(ctx, `SELECT name FROM sqlite_master WHERE type='index' AND `+notInternal)
	case "schema":
		return false, s.query(ctx, `SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND `+notInternal)
	case "timer":
		if arg != "on" && arg != "off" {
			return false, fmt.Errorf("invalid option '%s'. Use 'on' or 'off' (default)", arg)
		}
		s.timer = arg == "on"
	case "consistency":
		if arg == "" {
			fmt.Fprintln(s.out, s.consistency)
			break
		}
		l := strings.ToLower(arg)
		if !contains(levels, l) {
			return false, fmt.Errorf("invalid consistency '%s'. Use 'none', 'weak', 'linearizable', 'strong' or 'auto'", arg)
		}
		s.consistency = l
	case "status":
		return false, s.jsonTree(ctx, "/status", nil, arg)
	case "expvar":
		return false, s.jsonTree(ctx, "/debug/vars", nil, arg)
	case "nodes":
		q := url.Values{}
		if arg == "all" {
			q.Set("nonvoters", "")
		}
		return false, s.jsonTree(ctx, "/nodes", q, "")
	case "leader":
		return false, s.jsonTree(ctx, "/leader", nil, "")
	case "extensions":
		return false, s.jsonTree(ctx, "/status", nil, "extensions")
	case "ready":
		r, err := s.c.do(ctx, http.MethodGet, "/readyz", nil, "", nil)
		if err != nil {
			return false, err
		}
		if r.status == http.StatusOK {
			fmt.Fprintln(s.out, "ready")
		} else {
			fmt.Fprintln(s.out, "not ready")
		}
	case "backup":
		if err := need("an output file for the backup"); err != nil {
			return false, err
		}
		if err := s.fetchToFile(ctx, nil, arg); err != nil {
			return false, err
		}
		fmt.Fprintln(s.out, "backup file written successfully")
	case "dump":
		if len(in.Args) == 0 {
			return false, errors.New("please specify an output file for the SQL text")
		}
		q := url.Values{"fmt": {"sql"}}
		if len(in.Args) > 1 {
			q.Set("tables", strings.Join(in.Args[1:], ","))
		}
		if err := s.fetchToFile(ctx, q, in.Args[0]); err != nil {
			return false, err
		}
		fmt.Fprintln(s.out, "SQL text file written successfully")
	case "restore":
		if err := need("an input file to restore from"); err != nil {
			return false, err
		}
		return false, s.restore(ctx, arg)
	case "boot":
		if err := need("an input file to boot with"); err != nil {
			return false, err
		}
		return false, s.boot(ctx, arg)
	case "remove":
		if err := need("the ID of the node to remove"); err != nil {
			return false, err
		}
		b, _ := json.Marshal(map[string]string{"id": arg})
		return false, s.simple(ctx, http.MethodDelete, "/remove", nil, b)
	case "snapshot":
		q := url.Values{}
		if arg != "" {
			if _, err := strconv.ParseUint(arg, 10, 64); err != nil {
				return false, fmt.Errorf("invalid trailing logs %q", arg)
			}
			q.Set("trailing_logs", arg)
		}
		return false, s.simple(ctx, http.MethodPost, "/snapshot", q, nil)
	case "reap":
		return false, s.simple(ctx, http.MethodPost, "/reap", nil, nil)
	case "stepdown":
		var b []byte
		if arg != "" {
			b, _ = json.Marshal(map[string]string{"id": arg})
		}
		return false, s.simple(ctx, http.MethodPost, "/leader", url.Values{"wait": {"true"}}, b)
	case "sysdump":
		if err := need("an output file for the sysdump"); err != nil {
			return false, err
		}
		return false, s.sysdump(ctx, arg)
	default:
		return false, fmt.Errorf("unknown command '.%s'; enter \".help\" for usage hints", in.Cmd)
	}
	return false, nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// decode reads rqlite's JSON with numbers kept exact.
func decode(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return d.Decode(v)
}

type response struct {
	Results []Result `json:"results"`
	Error   string   `json:"error"`
}

func (s *Shell) readQ() url.Values {
	q := url.Values{"level": {s.consistency}, "blob_array": {""}}
	if s.timer {
		q.Set("timings", "")
	}
	return q
}

// request sends a statement typed at the prompt to /db/request (rqlite's
// CLI since v8.43.4), at the session's read consistency.
func (s *Shell) request(ctx context.Context, sql string) error {
	body, _ := json.Marshal([]string{sql})
	r, err := s.c.do(ctx, http.MethodPost, "/db/request", s.readQ(), "application/json", body)
	if err != nil {
		return err
	}
	return s.printResults(r)
}

// query runs a dot command's SELECT through /db/query.
func (s *Shell) query(ctx context.Context, sql string) error {
	q := s.readQ()
	q.Set("q", sql)
	r, err := s.c.do(ctx, http.MethodGet, "/db/query", q, "", nil)
	if err != nil {
		return err
	}
	return s.printResults(r)
}

func (s *Shell) printResults(r reply) error {
	b, err := r.ok()
	if err != nil {
		return err
	}
	var resp response
	if err := decode(b, &resp); err != nil {
		return fmt.Errorf("reading the response: %w", err)
	}
	if resp.Error != "" {
		return errors.New(resp.Error)
	}
	if len(resp.Results) != 1 {
		return fmt.Errorf("unexpected results length: %d", len(resp.Results))
	}
	WriteResult(s.out, &resp.Results[0], s.timer)
	return nil
}

// jsonTree fetches a JSON object and prints it as a tree; key, if set,
// picks one top-level key (rqlite's `.status store`).
func (s *Shell) jsonTree(ctx context.Context, path string, q url.Values, key string) error {
	r, err := s.c.do(ctx, http.MethodGet, path, q, "", nil)
	if err != nil {
		return err
	}
	b, err := r.ok()
	if err != nil {
		return err
	}
	m := map[string]any{}
	if err := decode(b, &m); err != nil {
		return fmt.Errorf("reading the response: %w", err)
	}
	if key != "" {
		m = map[string]any{key: m[key]}
	}
	WriteJSONTree(s.out, m)
	return nil
}

func (s *Shell) simple(ctx context.Context, method, path string, q url.Values, body []byte) error {
	ctype := ""
	if body != nil {
		ctype = "application/json"
	}
	r, err := s.c.do(ctx, method, path, q, ctype, body)
	if err != nil {
		return err
	}
	_, err = r.ok()
	return err
}

func (s *Shell) fetchToFile(ctx context.Context, q url.Values, file string) error {
	r, err := s.c.do(ctx, http.MethodGet, "/db/backup", q, "", nil)
	if err != nil {
		return err
	}
	b, err := r.ok()
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o644)
}

// isSQLite is rqlite's test: the file header.
func isSQLite(b []byte) bool { return len(b) > 13 && string(b[:13]) == "SQLite format" }

func (s *Shell) restore(ctx context.Context, file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	ctype := "text/plain"
	if isSQLite(b) {
		ctype = "application/octet-stream"
	}
	r, err := s.c.do(ctx, http.MethodPost, "/db/load", nil, ctype, b)
	if err != nil {
		return err
	}
	body, err := r.ok()
	if err != nil {
		return err
	}
	if !isSQLite(b) {
		var resp response
		if err := decode(body, &resp); err != nil {
			return fmt.Errorf("reading the response: %w", err)
		}
		if resp.Error != "" {
			return errors.New(resp.Error)
		}
		for _, res := range resp.Results {
			if res.Error != "" {
				fmt.Fprintf(s.out, "Error: %s\n", res.Error)
				return nil
			}
		}
	}
	fmt.Fprintln(s.out, "Database restored successfully.")
	return nil
}

func (s *Shell) boot(ctx context.Context, file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if !isSQLite(b) {
		return fmt.Errorf("%s is not a valid SQLite file", file)
	}
	r, err := s.c.do(ctx, http.MethodPost, "/boot", nil, "application/octet-stream", b)
	if err != nil {
		return err
	}
	if r.status != http.StatusOK {
		return fmt.Errorf("boot failed, status code: %d %s, %s", r.status, http.StatusText(r.status), strings.TrimSpace(string(r.body)))
	}
	fmt.Fprintln(s.out, "Node booted successfully.")
	return nil
}

// sysdump writes /status, /nodes, /readyz and /debug/vars of every node
// to one file, as rqlite's CLI does.
func (s *Shell) sysdump(ctx context.Context, file string) error {
	r, err := s.c.do(ctx, http.MethodGet, "/nodes", url.Values{"nonvoters": {""}}, "", nil)
	if err != nil {
		return err
	}
	b, err := r.ok()
	if err != nil {
		return err
	}
	var nodes map[string]struct {
		APIAddr string `json:"api_addr"`
	}
	if err := json.Unmarshal(b, &nodes); err != nil {
		return fmt.Errorf("reading /nodes: %w", err)
	}
	var out bytes.Buffer
	ids := make([]string, 0, len(nodes))
	for id := range nodes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		base := nodes[id].APIAddr
		if base == "" {
			continue
		}
		for _, p := range []string{"/status?pretty", "/nodes?pretty", "/readyz", "/debug/vars"} {
			fmt.Fprintf(&out, "=== %s%s\n", base, p)
			if err := s.fetchURL(ctx, base+p, &out); err != nil {
				fmt.Fprintf(&out, "Error sysdumping %s: %v\n", base, err)
			}
			out.WriteString("\n")
		}
	}
	return os.WriteFile(file, out.Bytes(), 0o644)
}

func (s *Shell) fetchURL(ctx context.Context, u string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if user, pass, ok := strings.Cut(s.cfg.Credentials, ":"); ok {
		req.SetBasicAuth(user, pass)
	}
	resp, err := s.c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	return err
}
