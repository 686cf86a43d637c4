package agent

import "testing"

// TestNoRoomSurvivesAPassWithoutMaps: the count of values without room,
// which holds a drain past its deadline, is lowered only by a pass that
// reached every job's owners. Before, a pass whose map fetches failed (the
// controller away, the node marked dead in the maps after a stall)
// reported 0, and the controller retired the drain as lost.
func TestNoRoomSurvivesAPassWithoutMaps(t *testing.T) {
	for _, c := range []struct {
		prev, got int64
		whole     bool
		want      int64
	}{
		{26, 0, false, 26}, // no maps: still 26 waiting for room
		{26, 30, false, 30},
		{26, 0, true, 0}, // a whole pass found room for all
		{26, 4, true, 4},
		{0, 0, false, 0},
	} {
		if got := nextNoRoom(c.prev, c.got, c.whole); got != c.want {
			t.Errorf("nextNoRoom(%d, %d, %v) = %d, want %d", c.prev, c.got, c.whole, got, c.want)
		}
	}
}
