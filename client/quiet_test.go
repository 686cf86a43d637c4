package client

import (
	"testing"
	"time"
)

// TestSilenceExcusesTheClientsOwnStall: the watch's look comes a minute
// late (this process was stopped, or a serverless sandbox frozen, with a
// call waiting; the reply waits unread in the socket). That minute is not
// counted as the node's silence; a node silent for Silence after the
// client's return still fails the connection. On the code before, the
// first look after the stall failed it.
func TestSilenceExcusesTheClientsOwnStall(t *testing.T) {
	t0 := time.Now()
	q := quiet{period: time.Second, silence: 8 * time.Second, unsent: -1, since: t0, last: t0}
	look := func(at time.Duration) bool { return q.silent(t0.Add(at), 0, true, false, -1, false) }
	for _, at := range []time.Duration{time.Second, 2 * time.Second} {
		if look(at) {
			t.Fatalf("failed %v into an 8 s silence", at)
		}
	}
	if look(62 * time.Second) {
		t.Fatal("the first look after the client's own 60 s stall failed the connection")
	}
	var failedAt time.Duration
	for at := 63 * time.Second; at < 80*time.Second && failedAt == 0; at += time.Second {
		if look(at) {
			failedAt = at
		}
	}
	if failedAt == 0 || failedAt > 62*time.Second+8*time.Second {
		t.Fatalf("a node silent after the client's return failed at %v; want within 8 s of it (70 s)", failedAt)
	}
}
