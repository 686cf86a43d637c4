package controller

import (
	"testing"
	"time"

	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/wire"
)

// TestDiscardOrderOnHeldDrainReplyDecodes: the documented way to let a
// drain held past its deadline for persisted values end is to order it
// again with --discard-persisted. The controller takes that order but
// answers with the drain's remaining time, which past the deadline is
// negative: the reply's deadline fails the client's decoder (a negative
// drain deadline), so pocket node drain --discard-persisted reports an
// error and exits 1 although the drain goes ahead (and, were the reply
// taken, its wait would have a limit already past).
func TestDiscardOrderOnHeldDrainReplyDecodes(t *testing.T) {
	c := newTest(t, Config{})
	a, b := "127.0.0.1:7001", "127.0.0.1:7002"
	mustRegister(t, c, dramNode(a, 1<<30, 1000))
	mustRegister(t, c, dramNode(b, 1<<30, 1000))
	if _, err := c.Drain(a, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	done := []wire.Metric{{Name: MetricDrainDone, Value: 1}}
	keepBeat(t, c, a, 2<<20, done, []wire.HeldJob{{Job: "old-3", Bytes: 2 << 20}})
	time.Sleep(20 * time.Millisecond)
	c.drainTick(time.Now())
	if st, ok := nodeState(c, a); !ok || st != wire.NodeDraining {
		t.Fatalf("node %v (listed %v): want its drain held past its deadline", st, ok)
	}
	nonce := []byte("nonce-0123456789")
	reply, err := c.drainRequest(nonce, &wire.DrainNode{Addr: a, DiscardPersisted: true,
		Proof: token.DrainProofDiscard(testSecret, nonce, a, 0)})
	if err != nil {
		t.Fatalf("the order with the discard: %v", err)
	}
	var got wire.DrainNode
	if err := roundTrip(reply, &got); err != nil {
		t.Fatalf("the reply to the order with the discard does not decode: %v (deadline %v)", err, reply.Deadline)
	}
	if got.Deadline < 0 {
		t.Fatalf("the reply's deadline %v is negative", got.Deadline)
	}
}
