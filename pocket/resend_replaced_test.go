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

// TestManifestResentAfterAnotherPut: a manifest put whose reply is lost
// is sent again by doReq once the job's map has changed (the case
// TestManifestPutAgainKeepsItsChunks covers when nothing came between).
// Here another writer's put of the same key lands between the first
// attempt and the resend: it replaces version V and, as it must, drops
// V's chunks. The resend then stores V's manifest again, over the other
// writer's, and the key names a version whose chunks are gone: a get
// fails with a corrupt object instead of returning one complete value.
// The lost reply is made by a proxy in front of the node that holds the
// node's reply to the first manifest put and then cuts the connection;
// the map change is another call's fetch (the map set by hand, as
// TestDropSpansMapChange does), so doReq sends the manifest put again.
func TestManifestResentAfterAnotherPut(t *testing.T) {
	const cs = 16 << 10
	r := newResendRig(t, cs)
	n, px, j := r.n, r.px, r.j
	other := staticJob(t, Config{ChunkSize: cs}, []string{n.addr}) // another writer, straight to the node
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	valV, valW := randBytes(3*cs+100, 1), randBytes(3*cs+200, 2)

	var armed atomic.Bool
	var commits atomic.Int32 // manifest puts of "obj" that reached the node
	armed.Store(true)
	done := make(chan error, 1)
	n.faulty.SetHook(func(op dataplane.FaultOp, _, key []byte) error {
		if op == dataplane.FaultCommit && string(key) == "obj" {
			commits.Add(1)
		}
		if op == dataplane.FaultCommit && string(key) == "obj" && armed.CompareAndSwap(true, false) {
			px.hold() // the node's reply to this first manifest put never reaches the writer
			go func() { done <- between(ctx, r, other, valV, valW) }()
		}
		return nil
	})
	putErr := j.Put(ctx, "obj", valV)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("the first manifest put never reached the node")
	}
	if putErr != nil {
		t.Logf("the put whose reply was lost: %v", putErr)
	}
	// 3 on the code this was written against: the writer's, the other
	// writer's, the writer's again. A fix may send it once (2).
	t.Logf("%d manifest puts of the key reached the node", commits.Load())
	got, err := j.Get(ctx, "obj")
	if err != nil || !bytes.Equal(got, valV) && !bytes.Equal(got, valW) {
		t.Fatalf("get after the resent manifest put: %d bytes (V: %v, W: %v), %v; want one of the two values whole",
			len(got), bytes.Equal(got, valV), bytes.Equal(got, valW), err)
	}
}

// between runs while the first manifest put's reply is held: it waits
// until version V is readable, puts W over it from the other writer,
// changes the job's map (another call's fetch) and cuts the connection.
func between(ctx context.Context, r *resendRig, other *Job, valV, valW []byte) error {
	if !waitUntil(10*time.Second, func() bool {
		got, err := other.Get(ctx, "obj")
		return err == nil && bytes.Equal(got, valV)
	}) {
		return errors.New("version V never became readable")
	}
	return r.putBetween(ctx, other, "obj", valW)
}
