package pocket

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestDeadNodeErrorSaysWhenToRetry: a put or get of a key whose node the
// map marks dead (within the controller's --dead-node-grace) fails at
// once with ErrUnavailable saying what the caller can do: retry once the
// controller declares the node lost and takes it out of the map (the
// grace, 30 s by default), when puts go to the other nodes and gets
// answer lost. Before, 'unavailable: node X is dead' and nothing else.
func TestDeadNodeErrorSaysWhenToRetry(t *testing.T) {
	const addr = "127.0.0.1:1"
	j := staticJob(t, Config{}, []string{addr})
	m := j.snapshot()
	m.Dead = map[string]bool{addr: true}
	j.setMap(m)
	ctx := context.Background()
	_, getErr := j.Get(ctx, "k")
	for op, err := range map[string]error{"put": j.Put(ctx, "k", []byte("v")), "get": getErr} {
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("%s of a dead node's key: %v; want unavailable", op, err)
		}
		msg := err.Error()
		for _, want := range []string{"node " + addr + " is dead: ", "until the controller declares it lost",
			"--dead-node-grace, 30 s by default", "retry then", "puts go to the job's other nodes"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s of a dead node's key: %q does not say %q", op, msg, want)
			}
		}
	}
}
