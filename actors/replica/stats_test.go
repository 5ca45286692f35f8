package replica

import "testing"

// TestCountSnapshot: a snapshot is counted when Dragonboat's event and the
// snapshot index agree; an install, a request that found nothing new and
// what was on disk at start are not (rqlite's num_snapshots).
func TestCountSnapshot(t *testing.T) {
	type sample struct {
		idx, events uint64
		install     [2]uint64
	}
	cases := []struct {
		name    string
		samples []sample
		want    uint64
	}{
		{"snapshot on disk at start", []sample{{100, 0, [2]uint64{}}}, 0},
		{"one snapshot", []sample{{0, 0, [2]uint64{}}, {50, 1, [2]uint64{}}}, 1},
		{"index moved before the event: decided next sample", []sample{{0, 0, [2]uint64{}}, {50, 0, [2]uint64{}}, {50, 1, [2]uint64{}}}, 1},
		{"request with nothing new: event without a move", []sample{{50, 0, [2]uint64{}}, {50, 1, [2]uint64{}}}, 0},
		{"install: move without event", []sample{{0, 0, [2]uint64{}}, {70, 0, [2]uint64{0, 70}}}, 0},
		{"install seen a sample late", []sample{{0, 0, [2]uint64{}}, {70, 0, [2]uint64{}}, {70, 0, [2]uint64{1, 70}}}, 0},
		{"install then snapshot", []sample{{0, 0, [2]uint64{}}, {70, 0, [2]uint64{1, 70}}, {90, 1, [2]uint64{1, 70}}}, 1},
		{"two snapshots", []sample{{0, 0, [2]uint64{}}, {50, 1, [2]uint64{}}, {60, 2, [2]uint64{}}}, 2},
	}
	for _, tc := range cases {
		var s sampler
		for _, x := range tc.samples {
			s.countSnapshot(x.idx, x.events, x.install)
		}
		if s.snapshots != tc.want {
			t.Errorf("%s: %d snapshots, want %d", tc.name, s.snapshots, tc.want)
		}
	}
}
