package pocket

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// TestGivenUpCallDoesNotOvertakeTheNext: a put or delete whose caller gave
// up runs on to its end (finish); the Job's next put or delete of the same
// key (or, for a recursive delete, of a key under its prefix, and the
// other way round) waits for it, so the call given up cannot land after
// a later call was acknowledged. Each given-up call here is held back
// before its request is sent, as a slow network holds it. On the old code
// (finish without the fence) the next call completed at once and the call
// given up then replaced its value: the get read "A" (or "not found")
// after "B" was acknowledged (a hostile trial saw both).
func TestGivenUpCallDoesNotOvertakeTheNext(t *testing.T) {
	c := newTestCluster(t, 1, 64<<20)
	ctx := context.Background()
	j, err := c.store().RegisterJob(ctx, "fence", Hints{})
	if err != nil {
		t.Fatal(err)
	}
	put := func(key, v string) func(context.Context) error {
		return func(ctx context.Context) error {
			_, _, err := j.doReq(ctx, wire.OpPut, 0, []byte(key), 0, reqExtra{version: newVersion()}, []byte(v), nil)
			return err
		}
	}
	del := func(key string) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := j.do(ctx, wire.OpDelete, 0, []byte(key), 0, nil, nil)
			return err
		}
	}
	rmAll := func(prefix string) func(context.Context) error {
		return func(ctx context.Context) error { var n removeCount; return j.deletePrefix(ctx, prefix, &n) }
	}
	for _, tc := range []struct {
		name      string
		key       string // the given-up call's key, or prefix
		prefix    bool
		givenUp   func(context.Context) error
		next      func() error
		wantKey   string
		want      string // "" : not found
		wantFound bool
	}{
		{"put then put", "k1", false, put("k1", "A"), func() error { return j.Put(ctx, "k1", []byte("B")) }, "k1", "B", true},
		{"delete then put", "k2", false, del("k2"), func() error { return j.Put(ctx, "k2", []byte("B")) }, "k2", "B", true},
		{"remove-all then put under it", "d/", true, rmAll("d/"), func() error { return j.Put(ctx, "d/x", []byte("B")) }, "d/x", "B", true},
		{"put under a dir then remove-all", "e/x", false, put("e/x", "A"), func() error { return j.RemoveAll(ctx, "e") }, "e/x", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gate, landed := make(chan struct{}), make(chan struct{})
			cctx, cancel := context.WithCancel(ctx)
			given := make(chan error, 1)
			go func() {
				given <- j.finish(cctx, tc.key, tc.prefix, func(ctx context.Context) error {
					defer close(landed)
					<-gate // held back on its way to the node
					return tc.givenUp(ctx)
				})
			}()
			cancel()
			if err := <-given; !errors.Is(err, context.Canceled) {
				t.Fatalf("given-up call: %v, want its context's error", err)
			}
			next := make(chan error, 1)
			go func() { next <- tc.next() }()
			var nextErr error
			early := false
			select {
			case nextErr = <-next:
				early = true
				t.Logf("the next call completed (%v) before the call given up", nextErr)
			case <-time.After(100 * time.Millisecond): // it waits for the fence
			}
			close(gate)
			<-landed
			if !early {
				nextErr = <-next
			}
			if nextErr != nil {
				t.Fatalf("next call: %v", nextErr)
			}
			v, err := j.Get(ctx, tc.wantKey)
			switch {
			case tc.wantFound && (err != nil || string(v) != tc.want):
				t.Fatalf("get %s after the next call was acknowledged: %q %v, want %q", tc.wantKey, v, err, tc.want)
			case !tc.wantFound && !errors.Is(err, ErrNotFound):
				t.Fatalf("get %s after the remove-all was acknowledged: %q %v, want not found", tc.wantKey, v, err)
			}
			if n := j.fences.n.Load(); n != 0 {
				t.Fatalf("%d fences left once every call ended", n)
			}
		})
	}
}

// TestGivenUpMarkerAndReadDeleteLeaveFences: a directory marker's put and a
// delete-after-read get given up while their node does not answer leave a
// fence each, as puts and deletes do: both change their key. On the old
// code neither did (a hostile trial: a cancelled CreateDir's marker landed
// after the Job's acknowledged RemoveAll in 23 of 123 rounds, and a
// cancelled delete-after-read deleted the next acknowledged put's value in
// 48 of 204).
func TestGivenUpMarkerAndReadDeleteLeaveFences(t *testing.T) {
	c := newTestCluster(t, 0, 64<<20)
	nd, d := c.newNode(64 << 20)
	p := newFreezeProxy(t, nd.Addr().String())
	c.runAgent(nd, d, p.addr)
	c.awaitActive(1)
	ctx := context.Background()
	j, err := c.store().RegisterJob(ctx, "fences", Hints{})
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	p.frozen.Store(true)
	for i, call := range []func(context.Context) error{
		func(ctx context.Context) error { return j.CreateDir(ctx, "d") },
		func(ctx context.Context) error { _, err := j.Get(ctx, "k", DeleteAfterRead()); return err },
	} {
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		err := call(cctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("call %d to the frozen node: %v, want its deadline", i, err)
		}
		if n := j.fences.n.Load(); n != int32(i+1) {
			t.Fatalf("%d fence(s) after call %d was given up, want %d", n, i, i+1)
		}
	}
}
