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

// TestSingleKeyWriteNotResent: a write of one key whose reply is lost once
// the job's map has changed must not be sent again (doReq, resendable):
// another writer's value B, put in between and read by others, would be
// overwritten or deleted by the second copy, or (delete-after-read) a
// value the first copy consumed would be lost while the second consumed
// B. Each case loses the reply to the call's write (the proxy of
// TestManifestResentAfterAnotherPut), puts B from another writer, changes
// the map and cuts the connection; the call must then fail unavailable
// (its outcome unknown) and leave B. On the old code each call was sent
// again: the put returned nil and the key held its value over B, the
// delete returned nil and B was gone, the delete-after-reads returned B.
func TestSingleKeyWriteNotResent(t *testing.T) {
	const cs = 16 << 10
	small, big := []byte("value A"), randBytes(3*cs+100, 1)
	valB := []byte("value B, put between the two copies")
	cases := []struct {
		name string
		op   dataplane.FaultOp // the node's operation whose reply is lost
		prev []byte            // the key's value before the call (nil: none)
		call func(ctx context.Context, j *Job) error
	}{
		{"small put", dataplane.FaultCommit, nil, func(ctx context.Context, j *Job) error {
			return j.Put(ctx, "k", small)
		}},
		{"delete", dataplane.FaultDelete, small, func(ctx context.Context, j *Job) error {
			return j.Delete(ctx, "k")
		}},
		{"delete-after-read", dataplane.FaultDelete, small, func(ctx context.Context, j *Job) error {
			got, err := j.Get(ctx, "k", DeleteAfterRead())
			if err == nil && !bytes.Equal(got, small) {
				t.Errorf("delete-after-read returned %q, not the value it consumed", got)
			}
			return err
		}},
		{"chunked delete-after-read", dataplane.FaultDelete, big, func(ctx context.Context, j *Job) error {
			got, err := j.Get(ctx, "k", DeleteAfterRead())
			if err == nil && !bytes.Equal(got, big) {
				t.Errorf("delete-after-read returned %d bytes, not the value it consumed", len(got))
			}
			return err
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newResendRig(t, cs)
			n, px, j := r.n, r.px, r.j
			other := staticJob(t, Config{ChunkSize: cs}, []string{n.addr})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if c.prev != nil {
				if err := other.Put(ctx, "k", c.prev); err != nil {
					t.Fatal(err)
				}
			}
			var armed atomic.Bool
			armed.Store(true)
			done := make(chan error, 1)
			n.faulty.SetHook(func(op dataplane.FaultOp, _, key []byte) error {
				if op == c.op && string(key) == "k" && armed.CompareAndSwap(true, false) {
					px.hold()
					go func() { done <- r.putBetween(ctx, other, "k", valB) }()
				}
				return nil
			})
			callErr := c.call(ctx, j)
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-ctx.Done():
				t.Fatal("the call's write never reached the node")
			}
			if !errors.Is(callErr, ErrUnavailable) {
				t.Errorf("the call whose reply was lost: %v; want unavailable (outcome unknown)", callErr)
			}
			got, err := other.Get(ctx, "k")
			if err != nil || !bytes.Equal(got, valB) {
				t.Fatalf("the key after the call: %q, %v; want B, put after the call's write and never replaced", got, err)
			}
		})
	}
}
