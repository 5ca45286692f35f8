package sm

import (
	"context"
	"database/sql/driver"
	"fmt"
	"path/filepath"

	sqlite3 "github.com/mattn/go-sqlite3"

	"github.com/skiffdb/skiff/sm/cmdpb"
)

// nodesTable is the replicated node table: what every member knows of every
// other (Raft itself knows replica IDs and Raft addresses only).
const nodesTable = internalPrefix + "nodes"

var nodesSchema = `CREATE TABLE IF NOT EXISTS ` + nodesTable + ` (replica_id INTEGER PRIMARY KEY,
	node_id TEXT NOT NULL, raft_addr TEXT NOT NULL, api_addr TEXT NOT NULL, voter INTEGER NOT NULL)`

// NodeInfo is one row of the node table.
type NodeInfo struct {
	ReplicaID uint64
	NodeID    string
	RaftAddr  string
	APIAddr   string
	Voter     bool
}

// applyNode records or forgets one member's metadata. A node ID names one
// replica at a time: a node that re-joined under a new replica ID replaces
// its old row.
func (s *StateMachine) applyNode(m *cmdpb.NodeMeta) error {
	if m.GetRemove() {
		return execRaw(s.w.c, "DELETE FROM "+nodesTable+" WHERE replica_id = ?", arg(1, int64(m.GetReplicaId())))
	}
	if err := execRaw(s.w.c, "DELETE FROM "+nodesTable+" WHERE node_id = ? AND replica_id <> ?",
		arg(1, m.GetNodeId()), arg(2, int64(m.GetReplicaId()))); err != nil {
		return err
	}
	voter := int64(0)
	if m.GetVoter() {
		voter = 1
	}
	return execRaw(s.w.c, "INSERT OR REPLACE INTO "+nodesTable+" (replica_id, node_id, raft_addr, api_addr, voter) VALUES (?, ?, ?, ?, ?)",
		arg(1, int64(m.GetReplicaId())), arg(2, m.GetNodeId()), arg(3, m.GetRaftAddr()), arg(4, m.GetApiAddr()), arg(5, voter))
}

// readNodes returns the node table as of c's view.
func readNodes(c interface {
	QueryContext(context.Context, string, []driver.NamedValue) (driver.Rows, error)
}, q string) ([]NodeInfo, error) {
	rows, err := c.QueryContext(context.Background(), q, nil)
	if err != nil {
		return nil, fmt.Errorf("read node table: %w", err)
	}
	defer rows.Close()
	var out []NodeInfo
	dest := make([]driver.Value, 5)
	for rows.Next(dest) == nil {
		id, _ := dest[0].(int64)
		v, _ := dest[4].(int64)
		out = append(out, NodeInfo{ReplicaID: uint64(id), NodeID: str(dest[1]), RaftAddr: str(dest[2]), APIAddr: str(dest[3]), Voter: v != 0})
	}
	return out, nil
}

const selectNodes = "SELECT replica_id, node_id, raft_addr, api_addr, voter FROM " + nodesTable + " ORDER BY replica_id"

// notifyNodes publishes the node table (after Open, an install, or a batch
// that changed it).
func (s *StateMachine) notifyNodes() {
	nodes, err := readNodes(s.w.c, selectNodes)
	if err != nil {
		s.log.Warn("could not read the node table")
		return
	}
	s.cfg.Notify(Event{Kind: EventNodes, Nodes: nodes})
}

// copyNodes copies the node table from one database to another.
func copyNodes(from, to *sqlite3.SQLiteConn) error {
	nodes, err := readNodes(from, selectNodes)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		voter := int64(0)
		if n.Voter {
			voter = 1
		}
		if err := execRaw(to, "INSERT OR REPLACE INTO "+nodesTable+" (replica_id, node_id, raft_addr, api_addr, voter) VALUES (?, ?, ?, ?, ?)",
			arg(1, int64(n.ReplicaID)), arg(2, n.NodeID), arg(3, n.RaftAddr), arg(4, n.APIAddr), arg(5, voter)); err != nil {
			return fmt.Errorf("copy node table: %w", err)
		}
	}
	return nil
}

// ReadNodes reads the node table of the database in dir while no state
// machine has it open (offline recovery).
func ReadNodes(dir string) ([]NodeInfo, error) {
	gen, err := readCurrent(dir)
	if err != nil {
		return nil, err
	}
	c, err := openReader(filepath.Join(dir, dbName(gen)), false, false)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return readNodes(c, selectNodes)
}
