package metaclient

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/pocketstore/pocket/wire"
)

// TestBusyListingIsAskedAgain: a controller that answers a status busy
// (it builds a few listings at a time, controller/listings.go) is asked
// again within the call's retry bound, and the call succeeds once it
// answers. Before, `pocket status` failed at the first busy answer.
func TestBusyListingIsAskedAgain(t *testing.T) {
	var asked atomic.Int32
	busy := wire.NewEncoder().ErrorResponse(wire.Errorf(wire.CodeBusy, "the controller is building 2 other listings"))
	st := (&wire.ClusterStatus{NodeCount: 3}).Encode(flatbuffers.NewBuilder(0))
	addr := fakeController(t, func(wire.Header) (wire.Code, []byte) {
		if asked.Add(1) <= 2 {
			return wire.CodeBusy, busy
		}
		return wire.CodeOK, st
	})
	mc := New(addr, Options{})
	defer mc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := mc.Status(ctx)
	if err != nil || got.NodeCount != 3 || asked.Load() != 3 {
		t.Fatalf("status after two busy answers: %+v, %v, asked %d times; want the third answer", got, err, asked.Load())
	}
}
