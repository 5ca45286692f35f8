package cdc

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/skiffdb/skiff/sm"
)

// rqlite's structs (cdc/json/marshal.go), to check that Skiff's bytes are
// what encoding/json makes of them.
type rqEnvelope struct {
	ServiceID string       `json:"service_id,omitempty"`
	NodeID    string       `json:"node_id"`
	Payload   []*rqMessage `json:"payload"`
}

type rqMessage struct {
	Index     uint64       `json:"index"`
	Timestamp int64        `json:"commit_timestamp,omitempty"`
	Events    []*jsonEvent `json:"events"`
}

func encodeEnvelope(t *testing.T, serviceID, nodeID string, groups ...sm.ChangeGroup) string {
	t.Helper()
	var gs []Group
	for _, g := range groups {
		v, err := encodeGroup(g)
		if err != nil {
			t.Fatal(err)
		}
		d, err := decodeGroup(g.Index, g.Request, v)
		if err != nil {
			t.Fatal(err)
		}
		gs = append(gs, d)
	}
	return string(envelope(serviceID, nodeID, entries(gs)))
}

// TestEnvelopeExact pins rqlite's envelope: the docs' example (Guides/cdc)
// with rqlite's key order (service_id first, as its struct) and omissions
// (no "before" on an INSERT).
func TestEnvelopeExact(t *testing.T) {
	got := encodeEnvelope(t, "prod-eu-cluster", "127.0.0.1:4002", sm.ChangeGroup{
		Index: 3, CommitTime: 1757892884812603, Events: []sm.ChangeEvent{{
			Op: sm.ChangeInsert, Table: "users", NewRowID: 7,
			After: []sm.Column{{Name: "name", Value: "fiona"}, {Name: "id", Value: int64(7)}},
		}},
	})
	want := `{"service_id":"prod-eu-cluster","node_id":"127.0.0.1:4002","payload":[{"index":3,"commit_timestamp":1757892884812603,` +
		`"events":[{"op":"INSERT","table":"users","new_row_id":7,"after":{"id":7,"name":"fiona"}}]}]}`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestEventsExact(t *testing.T) {
	for _, tc := range []struct {
		name string
		ev   sm.ChangeEvent
		want string
	}{
		{"update", sm.ChangeEvent{Op: sm.ChangeUpdate, Table: "t", OldRowID: 5, NewRowID: 6,
			Before: []sm.Column{{Name: "b", Value: nil}, {Name: "a", Value: 1.5}},
			After:  []sm.Column{{Name: "b", Value: []byte{0, 1, 2, 255}}, {Name: "a", Value: int64(-3)}}},
			`{"op":"UPDATE","table":"t","new_row_id":6,"old_row_id":5,"before":{"a":1.5,"b":null},"after":{"a":-3,"b":"AAEC/w=="}}`},
		{"delete", sm.ChangeEvent{Op: sm.ChangeDelete, Table: "t", OldRowID: 9,
			Before: []sm.Column{{Name: "s", Value: "<a&b>\"é\n"}}},
			`{"op":"DELETE","table":"t","old_row_id":9,"before":{"s":"\u003ca\u0026b\u003e\"é\n"}}`},
		{"row ids only", sm.ChangeEvent{Op: sm.ChangeInsert, Table: "t", NewRowID: 1},
			`{"op":"INSERT","table":"t","new_row_id":1}`},
		{"rowid 0 and empty image", sm.ChangeEvent{Op: sm.ChangeInsert, Table: "t", After: []sm.Column{}},
			`{"op":"INSERT","table":"t"}`},
		{"infinity is null", sm.ChangeEvent{Op: sm.ChangeInsert, Table: "t", NewRowID: 2,
			After: []sm.Column{{Name: "f", Value: math.Inf(1)}, {Name: "g", Value: 1e21}}},
			`{"op":"INSERT","table":"t","new_row_id":2,"after":{"f":null,"g":1e+21}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := encodeEvents([]sm.ChangeEvent{tc.ev})
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// TestEnvelopeMatchesEncodingJSON: a batch of several indexes, one of them
// with several groups (a BATCH entry's requests) folded into one payload
// entry, is byte for byte encoding/json's output for rqlite's structs.
func TestEnvelopeMatchesEncodingJSON(t *testing.T) {
	g1 := insert(10, 0, 1, "a")
	g2a := insert(11, 0, 2, "b")
	g2b := sm.ChangeGroup{Index: 11, Request: 1, CommitTime: g2a.CommitTime, Events: []sm.ChangeEvent{
		{Op: sm.ChangeDelete, Table: "users", OldRowID: 1, Before: []sm.Column{{Name: "id", Value: int64(1)}, {Name: "name", Value: "a"}}},
		{Op: sm.ChangeUpdate, Table: "users", OldRowID: 2, NewRowID: 2,
			Before: []sm.Column{{Name: "id", Value: int64(2)}, {Name: "name", Value: "b"}},
			After:  []sm.Column{{Name: "id", Value: int64(2)}, {Name: "name", Value: "c"}}},
	}}
	g3 := sm.ChangeGroup{Index: 12, Events: []sm.ChangeEvent{{Op: sm.ChangeInsert, Table: "x", NewRowID: 3}}}
	got := encodeEnvelope(t, "", "node-1", g1, g2a, g2b, g3)

	ev := func(e sm.ChangeEvent) *jsonEvent {
		return &jsonEvent{Op: e.Op.String(), Table: e.Table, NewRowID: e.NewRowID, OldRowID: e.OldRowID,
			Before: rowImage(e.Before), After: rowImage(e.After)}
	}
	want, err := json.Marshal(rqEnvelope{NodeID: "node-1", Payload: []*rqMessage{
		{Index: 10, Timestamp: g1.CommitTime, Events: []*jsonEvent{ev(g1.Events[0])}},
		{Index: 11, Timestamp: g2a.CommitTime, Events: []*jsonEvent{ev(g2a.Events[0]), ev(g2b.Events[0]), ev(g2b.Events[1])}},
		{Index: 12, Events: []*jsonEvent{ev(g3.Events[0])}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

// BenchmarkEncodeGroup measures the JSON encoding Capture does on the apply
// goroutine: one UPDATE of a 4-column row.
func BenchmarkEncodeGroup(b *testing.B) {
	row := func(v string) []sm.Column {
		return []sm.Column{{Name: "id", Value: int64(7)}, {Name: "name", Value: v}, {Name: "score", Value: 1.5}, {Name: "blob", Value: []byte("0123456789")}}
	}
	g := sm.ChangeGroup{Index: 1, CommitTime: 1757892884812603, Events: []sm.ChangeEvent{{
		Op: sm.ChangeUpdate, Table: "users", OldRowID: 7, NewRowID: 7, Before: row("fiona"), After: row("fiona2")}}}
	b.ReportAllocs()
	for range b.N {
		if _, err := encodeGroup(g); err != nil {
			b.Fatal(err)
		}
	}
}

// TestAppendEventMatchesEncodingJSON: Skiff's hand-written encoder writes
// what encoding/json writes for rqlite's struct, for random events of
// every value type (strings with escapes, HTML, non-ASCII and invalid
// UTF-8; floats in every format; repeated column names).
func TestAppendEventMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	strs := []string{"", "a", "fiona", "<b>&amp;</b>", "quote\"back\\slash", "tab\tnl\nctl\x01", "é日本", "\u2028\u2029", "bad\xffutf8", "zz"}
	floats := []float64{0, 1.5, -2.25, 1e20, 1e21, 1e-6, 1e-7, 123456789.125, math.MaxFloat64, math.SmallestNonzeroFloat64, math.Inf(-1), math.NaN()}
	value := func() any {
		switch rng.IntN(5) {
		case 0:
			return nil
		case 1:
			return rng.Int64() - rng.Int64()
		case 2:
			return floats[rng.IntN(len(floats))]
		case 3:
			return strs[rng.IntN(len(strs))]
		}
		b := make([]byte, rng.IntN(20))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return b
	}
	row := func() []sm.Column {
		if rng.IntN(6) == 0 {
			return nil
		}
		cols := make([]sm.Column, rng.IntN(6))
		for i := range cols {
			cols[i] = sm.Column{Name: strs[rng.IntN(len(strs))], Value: value()}
		}
		return cols
	}
	for i := range 5000 {
		ev := sm.ChangeEvent{Op: sm.ChangeOp(1 + rng.IntN(3)), Table: strs[rng.IntN(len(strs))],
			OldRowID: rng.Int64N(3) - 1, NewRowID: rng.Int64() - rng.Int64(), Before: row(), After: row()}
		got, err := appendEvent(nil, ev)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(jsonEvent{Op: ev.Op.String(), Table: ev.Table, NewRowID: ev.NewRowID, OldRowID: ev.OldRowID,
			Before: rowImage(ev.Before), After: rowImage(ev.After)})
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("event %d %+v:\ngot  %s\nwant %s", i, ev, got, want)
		}
	}
}
