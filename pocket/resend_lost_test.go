package pocket

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/wire"
)

// TestLostReadSentAgain: a read whose connection is lost after its
// request was written, the job's map unchanged, is sent again on another
// connection (resendLost) and returns the value: a node that cut one
// connection (an eviction at its connection limit) serves the next. On
// the code before resendLost each case failed "connection lost" (a
// promotion flood failed 0-11 of about 19,000 gets that way). A consuming
// get (delete-after-read), which must not be done twice, still fails
// with its outcome unknown, and its value is consumed once. Listings and
// usage, sent to every node, waited 5 s for a newer map and failed.
func TestLostReadSentAgain(t *testing.T) {
	const noFaultOp = dataplane.FaultOp(255) // a request no tier operation sees
	const cs = 16 << 10
	small, big := []byte("value A"), randBytes(3*cs+100, 7)
	cases := []struct {
		name   string
		op     dataplane.FaultOp // the node's operation whose reply is cut
		val    []byte
		call   func(ctx context.Context, j *Job) ([]byte, error)
		resent bool
	}{
		{"get", dataplane.FaultOpen, small, func(ctx context.Context, j *Job) ([]byte, error) {
			return j.Get(ctx, "k")
		}, true},
		{"chunked get's manifest", dataplane.FaultOpen, big, func(ctx context.Context, j *Job) ([]byte, error) {
			return j.Get(ctx, "k")
		}, true},
		{"stat", dataplane.FaultStat, small, func(ctx context.Context, j *Job) ([]byte, error) {
			ok, err := j.Exists(ctx, "k")
			if err == nil && !ok {
				t.Error("Exists answered false for a stored key")
			}
			return small, err
		}, true},
		{"list", dataplane.FaultList, small, func(ctx context.Context, j *Job) ([]byte, error) {
			ents, err := j.List(ctx, "")
			if err == nil && (len(ents) != 1 || ents[0].Name != "k") {
				t.Errorf("List returned %+v, want k alone", ents)
			}
			return small, err
		}, true},
		{"usage", noFaultOp, small, func(ctx context.Context, j *Job) ([]byte, error) {
			n, err := j.Usage(ctx)
			if err == nil && n < int64(len(small)) {
				t.Errorf("Usage returned %d bytes, want at least %d", n, len(small))
			}
			return small, err
		}, true},
		{"delete-after-read", dataplane.FaultDelete, small, func(ctx context.Context, j *Job) ([]byte, error) {
			return j.Get(ctx, "k", DeleteAfterRead())
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newResendRig(t, cs)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := r.j.Put(ctx, "k", c.val); err != nil {
				t.Fatal(err)
			}
			var armed atomic.Bool
			armed.Store(true)
			cutDone := make(chan bool, 1)
			holdAndCut := func() {
				r.px.hold()
				go func() {
					held := r.px.waitHeld(10 * time.Second)
					r.px.cut()
					cutDone <- held
				}()
			}
			if c.op == noFaultOp {
				// No tier operation to hook: the next reply is the call's.
				holdAndCut()
			}
			r.n.faulty.SetHook(func(op dataplane.FaultOp, _, key []byte) error {
				if op == c.op && (string(key) == "k" || op == dataplane.FaultList) && armed.CompareAndSwap(true, false) {
					holdAndCut()
				}
				return nil
			})
			got, err := c.call(ctx, r.j)
			r.n.faulty.SetHook(nil)
			if !<-cutDone {
				t.Fatal("the node's reply was never held back")
			}
			if !c.resent {
				if !errors.Is(err, wire.ErrUnavailable) {
					t.Fatalf("consuming get after its connection was cut: %v (got %d bytes); want unavailable, outcome unknown", err, len(got))
				}
				if _, gerr := r.j.Get(ctx, "k"); !errors.Is(gerr, wire.ErrNotFound) {
					t.Fatalf("the consuming get's value after it: %v; want consumed once (not found)", gerr)
				}
				return
			}
			if err != nil {
				t.Fatalf("read after its connection was cut: %v; want it sent again and the value", err)
			}
			if !bytes.Equal(got, c.val) {
				t.Fatalf("read returned %d bytes, want the %d stored", len(got), len(c.val))
			}
		})
	}
}

// TestSilentNodeReadNotSentAgain: a read whose connection failed on
// silence (Config.Silence: the node frozen or cut off, not a close) is not
// sent again: it would wait out another silence on a new connection. The
// first version of resendLost sent it twice more: a frozen node's get took
// 3x the silence and dialled 2 more connections.
func TestSilentNodeReadNotSentAgain(t *testing.T) {
	t.Run("live job", func(t *testing.T) { silentNodeRead(t, false) })
	// A retired job's goneCheck tried a node again on any unavailable
	// error, silence included: 4 more connections and 5 silences a call
	// on a frozen node (a hostile re-check).
	t.Run("retired job", func(t *testing.T) { silentNodeRead(t, true) })
}

func silentNodeRead(t *testing.T, retired bool) {
	n := dropMoveCluster(t, 1)[0]
	px := newHoldProxy(t, n.addr)
	s := NewStore(nil, Config{Silence: 300 * time.Millisecond, ConnsPerNode: 1})
	t.Cleanup(func() { s.Close() })
	j, err := s.OpenStatic("job-1", px.addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := j.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	px.mu.Lock()
	before := len(px.open)
	px.mu.Unlock()
	j.retired.Store(retired)
	px.hold() // the get's reply is kept back, and its connection never cut
	if _, err := j.Get(ctx, "k"); !errors.Is(err, wire.ErrUnavailable) {
		t.Fatalf("get from a silent node: %v; want unavailable", err)
	}
	px.mu.Lock()
	dialled := (len(px.open) - before) / 2 // each proxied connection is two
	px.mu.Unlock()
	if dialled != 0 {
		t.Fatalf("the get dialled %d more connection(s) after its connection fell silent; want none", dialled)
	}
}
