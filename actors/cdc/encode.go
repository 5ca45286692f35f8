package cdc

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"

	"github.com/skiffdb/skiff/sm"
)

// The JSON is rqlite's (cdc/json/marshal.go): an envelope
//
//	{"service_id":S,"node_id":N,"payload":[{"index":I,"commit_timestamp":T,"events":[E...]}...]}
//
// with service_id omitted when empty and commit_timestamp (unix
// microseconds) when zero, and events
//
//	{"op":"INSERT","table":"t","new_row_id":7,"old_row_id":6,"before":{...},"after":{...}}
//
// whose table, row IDs and row images are omitted when empty (before on an
// INSERT, after on a DELETE, both with row_ids_only), row images keyed by
// column name in sorted order, BLOBs in base64 - all as encoding/json
// writes rqlite's structs. The events of one group are encoded once, at
// capture, and stored; a batch is assembled from the stored bytes.

// jsonEvent is rqlite's CDCMessageEvent (the tests check appendEvent
// against encoding/json's output for it).
type jsonEvent struct {
	Op       string         `json:"op"`
	Table    string         `json:"table,omitempty"`
	NewRowID int64          `json:"new_row_id,omitempty"`
	OldRowID int64          `json:"old_row_id,omitempty"`
	Before   map[string]any `json:"before,omitempty"`
	After    map[string]any `json:"after,omitempty"`
}

// rowImage is a row as rqlite's JSON object; nil for no image.
func rowImage(cols []sm.Column) map[string]any {
	if cols == nil {
		return nil
	}
	m := make(map[string]any, len(cols))
	for _, c := range cols {
		m[c.Name] = finite(c.Value)
	}
	return m
}

// finite maps the float infinities (and NaN) to nil: JSON has none (SQLite
// stores 1e999 as one); rqlite's encoder fails the whole batch on one,
// Skiff sends null.
func finite(v any) any {
	if f, ok := v.(float64); ok && (math.IsInf(f, 0) || math.IsNaN(f)) {
		return nil
	}
	return v
}

// encodeEvents is the events of one group as comma-separated JSON objects
// (the inside of the "events" array). It runs on the apply goroutine, so
// it writes the bytes itself instead of building maps for encoding/json;
// the output is the same.
func encodeEvents(evs []sm.ChangeEvent) ([]byte, error) {
	out := make([]byte, 0, 128*len(evs))
	var err error
	for i, ev := range evs {
		if i > 0 {
			out = append(out, ',')
		}
		if out, err = appendEvent(out, ev); err != nil {
			return nil, fmt.Errorf("encode event %d of table %q: %w", i, ev.Table, err)
		}
	}
	return out, nil
}

func appendEvent(b []byte, ev sm.ChangeEvent) ([]byte, error) {
	b = append(b, `{"op":`...)
	b = appendString(b, ev.Op.String())
	if ev.Table != "" {
		b = append(b, `,"table":`...)
		b = appendString(b, ev.Table)
	}
	if ev.NewRowID != 0 {
		b = append(b, `,"new_row_id":`...)
		b = strconv.AppendInt(b, ev.NewRowID, 10)
	}
	if ev.OldRowID != 0 {
		b = append(b, `,"old_row_id":`...)
		b = strconv.AppendInt(b, ev.OldRowID, 10)
	}
	var err error
	if len(ev.Before) > 0 {
		b = append(b, `,"before":`...)
		if b, err = appendRow(b, ev.Before); err != nil {
			return nil, err
		}
	}
	if len(ev.After) > 0 {
		b = append(b, `,"after":`...)
		if b, err = appendRow(b, ev.After); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// appendRow writes a row image as encoding/json writes a map: keys sorted,
// a repeated name keeping its last value.
func appendRow(b []byte, cols []sm.Column) ([]byte, error) {
	order := make([]int, len(cols))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(x, y int) bool { return cols[order[x]].Name < cols[order[y]].Name })
	b = append(b, '{')
	first := true
	for k, i := range order {
		if k+1 < len(order) && cols[order[k+1]].Name == cols[i].Name {
			continue // a later column of the same name wins, as in a map
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, cols[i].Name)
		b = append(b, ':')
		var err error
		if b, err = appendValue(b, finite(cols[i].Value)); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

func appendValue(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case int64:
		return strconv.AppendInt(b, v, 10), nil
	case string:
		return appendString(b, v), nil
	case []byte:
		b = append(b, '"')
		n := len(b)
		b = append(b, make([]byte, base64.StdEncoding.EncodedLen(len(v)))...)
		base64.StdEncoding.Encode(b[n:], v)
		return append(b, '"'), nil
	}
	// float64 (encoding/json's float format) and anything unexpected.
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, j...), nil
}

// valueHeader is the commit time stored before a group's events.
const valueHeader = 8

// encodeGroup is a group's outbox value: its commit time (8 bytes, big
// endian) and its encoded events.
func encodeGroup(g sm.ChangeGroup) ([]byte, error) {
	evs, err := encodeEvents(g.Events)
	if err != nil {
		return nil, err
	}
	v := make([]byte, valueHeader, valueHeader+len(evs))
	binary.BigEndian.PutUint64(v, uint64(g.CommitTime))
	return append(v, evs...), nil
}

// Group is one stored group: what one client request changed.
type Group struct {
	Index   uint64
	Request uint32
	// CommitTime is unix microseconds at apply.
	CommitTime int64
	// Events is the encoded events (the inside of a JSON array).
	Events []byte
}

func decodeGroup(index uint64, req uint32, v []byte) (Group, error) {
	if len(v) < valueHeader {
		return Group{}, fmt.Errorf("%w: group %d/%d: value of %d bytes", ErrStorage, index, req, len(v))
	}
	return Group{Index: index, Request: req, CommitTime: int64(binary.BigEndian.Uint64(v)), Events: v[valueHeader:]}, nil
}

// entry is one payload entry: the groups of one index.
type entry struct {
	index      uint64
	commitTime int64
	events     [][]byte
}

// entries folds groups (in index, request order) into payload entries, one
// per index; the entry's commit time is its first group's.
func entries(groups []Group) []entry {
	var out []entry
	for _, g := range groups {
		if n := len(out); n > 0 && out[n-1].index == g.Index {
			if len(g.Events) > 0 {
				out[n-1].events = append(out[n-1].events, g.Events)
			}
			continue
		}
		e := entry{index: g.Index, commitTime: g.CommitTime}
		if len(g.Events) > 0 {
			e.events = [][]byte{g.Events}
		}
		out = append(out, e)
	}
	return out
}

func appendEntry(b []byte, e entry) []byte {
	b = append(b, `{"index":`...)
	b = strconv.AppendUint(b, e.index, 10)
	if e.commitTime != 0 {
		b = append(b, `,"commit_timestamp":`...)
		b = strconv.AppendInt(b, e.commitTime, 10)
	}
	b = append(b, `,"events":[`...)
	for i, ev := range e.events {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, ev...)
	}
	return append(b, "]}"...)
}

// envelope is rqlite's JSON envelope of entries.
func envelope(serviceID, nodeID string, es []entry) []byte {
	b := make([]byte, 0, 64+envelopeSize(es))
	b = append(b, '{')
	if serviceID != "" {
		b = append(b, `"service_id":`...)
		b = appendString(b, serviceID)
		b = append(b, ',')
	}
	b = append(b, `"node_id":`...)
	b = appendString(b, nodeID)
	b = append(b, `,"payload":[`...)
	for i, e := range es {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendEntry(b, e)
	}
	return append(b, "]}"...)
}

func envelopeSize(es []entry) int {
	n := 0
	for _, e := range es {
		n += 64
		for _, ev := range e.events {
			n += len(ev) + 1
		}
	}
	return n
}

// appendString appends s as encoding/json writes it: HTML-escaped, as
// rqlite's, invalid UTF-8 replaced by U+FFFD.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= 0x80 {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
