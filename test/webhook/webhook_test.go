package webhook

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

const (
	post1 = `{"node_id":"n1","payload":[{"index":3,"commit_timestamp":1757892884812603,"events":[{"op":"INSERT","table":"t","new_row_id":7,"before":null,"after":{"id":7,"name":"x"}}]}]}`
	post2 = `{"node_id":"n1","payload":[{"index":3,"commit_timestamp":1757892884812603,"events":[{"op":"INSERT","table":"t","new_row_id":7,"before":null,"after":{"id":7,"name":"x"}}]},` +
		`{"index":5,"commit_timestamp":1757892884812700,"events":[{"op":"UPDATE","table":"t","old_row_id":7,"new_row_id":7,"before":{"id":7,"name":"x"},"after":{"id":7,"name":"y"}}]},` +
		`{"index":5,"commit_timestamp":1757892884812700,"events":[{"op":"DELETE","table":"t","old_row_id":7,"before":{"id":7,"name":"y"},"after":null}]}]}`
	// gap re-sends index 4, which was never delivered.
	gap = `{"node_id":"n2","payload":[{"index":4,"commit_timestamp":1757892884812650,"events":[{"op":"INSERT","table":"t","new_row_id":8,"after":{"id":8}}]}]}`
)

func send(t *testing.T, r *Receiver, body string) int {
	t.Helper()
	resp, err := http.Post(r.URL(), "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestReceiver: the receiver's own contract, so that a failure of the
// end-to-end tests is Skiff's: dedup by index, gaps and malformed bodies
// reported, 500s while failing.
func TestReceiver(t *testing.T) {
	r, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.SetFailing(true)
	if got := send(t, r, post1); got != http.StatusInternalServerError || r.Refused() != 1 || r.Highest() != 0 {
		t.Fatalf("failing: status %d refused %d highest %d", got, r.Refused(), r.Highest())
	}
	r.SetFailing(false)
	if got := send(t, r, post1); got != http.StatusOK {
		t.Fatalf("status %d", got)
	}
	if got := send(t, r, post2); got != http.StatusOK {
		t.Fatalf("status %d", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.WaitIndex(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if v := r.Violations(); len(v) != 0 {
		t.Fatalf("violations on a clean stream: %v", v)
	}
	if d := r.Delivered(); len(d) != 3 || d[0].Index != 3 || d[2].Index != 5 || r.Duplicates() != 1 {
		t.Fatalf("delivered %+v, duplicates %d", d, r.Duplicates())
	}
	send(t, r, gap)
	if v := r.Violations(); len(v) != 1 || !strings.Contains(v[0], "gap") {
		t.Fatalf("a re-sent index never delivered: violations %v, want one gap", v)
	}
	if got := send(t, r, `{"node_id":"n1","payload":[],"extra":1}`); got != http.StatusBadRequest {
		t.Fatalf("unknown key: status %d, want 400", got)
	}
	e := r.Delivered()[1].Events[0]
	if Normalize(e.After["id"]) != int64(7) {
		t.Fatalf("after.id %#v", e.After["id"])
	}
	short, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	if err := r.WaitIndex(short, 9); err == nil || !strings.Contains(err.Error(), "highest delivered 5") {
		t.Fatalf("WaitIndex beyond the stream: %v", err)
	}
}

func TestCheck(t *testing.T) {
	env, err := Decode([]byte(`{"node_id":"n1","payload":[{"index":1,"commit_timestamp":1,"events":[{"op":"DELETE","table":"t","old_row_id":1,"before":null,"after":{"id":1}}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if bad := Check(env, false); len(bad) != 1 {
		t.Fatalf("a DELETE with after and no before: %v", bad)
	}
}

// TestLight: the light receiver finds every index and commit timestamp
// without decoding.
func TestLight(t *testing.T) {
	r, err := New(Config{Light: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	send(t, r, post2)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.WaitIndex(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if _, ts, ok := r.Arrival(3); !ok || ts != 1757892884812603 {
		t.Fatalf("index 3: ok %v commit_timestamp %d", ok, ts)
	}
	if _, ts, ok := r.Arrival(5); !ok || ts != 1757892884812700 {
		t.Fatalf("index 5: ok %v commit_timestamp %d", ok, ts)
	}
}
