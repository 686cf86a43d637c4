package pocket

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/dataplane"
)

// TestManifestResendRefused: a manifest put whose reply is lost is sent
// again once the map has changed (doReq); the first attempt may have been
// stored. When the node refuses the second attempt (here for space: a
// put refused for space did not happen, the history checker's model
// says), commit takes the put for failed and drops its version's chunks
// (abort), but the first attempt's manifest is there, naming that
// version: the key reads as a corrupt object instead of the value the put
// stored or the one before it (there was none: not found).
func TestManifestResendRefused(t *testing.T) {
	const cs = 16 << 10
	r := newResendRig(t, cs)
	n, px, j := r.n, r.px, r.j
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	val := randBytes(3*cs+100, 1)

	var manifests atomic.Int32
	n.faulty.SetHook(func(op dataplane.FaultOp, _, key []byte) error {
		if op != dataplane.FaultCommit || string(key) != "obj" {
			return nil
		}
		switch manifests.Add(1) {
		case 1: // stored; its reply is lost, once the map has changed
			px.hold()
			go func() {
				if px.waitHeld(10 * time.Second) {
					r.changeMap()
					px.cut()
				}
			}()
		case 2: // the same put again: refused
			return dataplane.ErrNoSpace
		}
		return nil
	})
	putErr := j.Put(ctx, "obj", val)
	t.Logf("the put: %v (%d manifest puts reached the node)", putErr, manifests.Load())
	got, err := j.Get(ctx, "obj")
	switch {
	case err == nil && bytes.Equal(got, val):
	case errors.Is(err, ErrNotFound):
	default:
		t.Fatalf("get after the put: %d bytes (the value put: %v), %v; want the value whole or not found", len(got), bytes.Equal(got, val), err)
	}
}
