package sm

import (
	"testing"

	"google.golang.org/protobuf/proto"
)

// A write batch in flight across a leader change is proposed again under
// the same request ID (actors/replica, propose.go), so both copies can
// commit: next to each other in one Update, or with other entries between
// them. The second copy must apply nothing and answer exactly what the
// first did (each write's last_insert_id and rows_affected, the first
// copy's index), so no client sees a write applied twice or a wrong
// answer.
func TestReproposedBatchAppliesOnceAndAnswersTheOriginal(t *testing.T) {
	for _, tc := range []struct {
		name    string
		between int // entries committed between the two copies
	}{
		{"both copies in one Update", 0},
		{"another write between them", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.apply(cmd("", false, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
			copyOf := func() []byte {
				return batchCmd("the-batch",
					req(false, "INSERT INTO t (v) VALUES ('a')"),
					req(false, "INSERT INTO t (v) VALUES ('b')", "INSERT INTO t (v) VALUES ('c')"),
					req(false, "INSERT INTO nope VALUES (1)"))
			}
			ents := [][]byte{copyOf()}
			for range tc.between {
				ents = append(ents, cmd("other", false, "INSERT INTO t (v) VALUES ('other')"))
			}
			ents = append(ents, copyOf())
			out := h.apply(ents...)
			first, second := out[0], out[len(out)-1]
			if !proto.Equal(first, second) {
				t.Fatalf("the second copy answered\n %v\nthe first\n %v", second, first)
			}
			if n := h.count("t"); n != int64(3+tc.between) {
				t.Fatalf("rows = %d, want %d", n, 3+tc.between)
			}
			if got := first.Batch[1].Results[1].LastInsertId; got != 3 {
				t.Fatalf("last_insert_id of 'c' = %d, want 3", got)
			}
			if first.Batch[2].Results[0].Error == "" {
				t.Fatalf("the failing write answered %v", first.Batch[2])
			}
		})
	}
}
