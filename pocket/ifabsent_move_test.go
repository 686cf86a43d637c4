package pocket

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// TestIfAbsentPutDuringMapChange: a put with wire.FlagIfAbsent (the
// protocol's conditional put) of a key that holds a value answers
// "exists" and changes nothing while the job's map grows and while it
// shrinks, though the key's live owner may not hold the value yet; a key
// that holds none takes the put once. Before (drainDo sent it to the live
// owner alone) a hostile trial's if-absent puts during a grow stored 449
// of 3,000 over the keys' values.
func TestIfAbsentPutDuringMapChange(t *testing.T) {
	ctl, addr, _ := startDrainCluster(t, 4, 256<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Dial(ctx, addr, Config{ChunkSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	j, err := s.RegisterJob(ctx, "ifabsent", Hints{PeakMbps: 24000})
	if err != nil {
		t.Fatal(err)
	}
	const n = 2000
	key := func(i int) string { return fmt.Sprintf("k/%05d", i) }
	for i := 0; i < n; i++ {
		if err := j.Put(ctx, key(i), []byte("original")); err != nil {
			t.Fatal(err)
		}
	}
	putIfAbsent := func(k, v string) error {
		_, _, err := j.doReq(ctx, wire.OpPut, wire.FlagIfAbsent, []byte(k), 0, reqExtra{version: newVersion()}, []byte(v), nil)
		return err
	}
	during := func(change string, fresh string) {
		t.Helper()
		var stored, moving int
		for i := 0; i < n; i++ {
			if j.route([]byte(key(i)), 0).old != "" {
				moving++
			}
			switch err := putIfAbsent(key(i), "conditional"); {
			case err == nil:
				stored++
			case !errors.Is(err, wire.ErrExists):
				t.Fatalf("if-absent put of %s during the %s: %v", key(i), change, err)
			}
		}
		if stored > 0 {
			t.Errorf("during the %s, %d of %d if-absent puts stored over a value", change, stored, n)
		}
		if moving == 0 {
			t.Logf("the %s ended before the puts were routed to a moving key: nothing tested", change)
		}
		if err := putIfAbsent(fresh, "first"); err != nil {
			t.Errorf("if-absent put of a new key during the %s: %v", change, err)
		}
		if err := putIfAbsent(fresh, "second"); !errors.Is(err, wire.ErrExists) {
			t.Errorf("second if-absent put of %s during the %s: %v; want exists", fresh, change, err)
		}
	}
	if err := ctl.GrowJob(j.ID(), outside(ctl, j.ID())); err != nil {
		t.Fatal(err)
	}
	during("grow", "fresh/grow")
	waitFor(t, time.Minute, "the grow to end", func() bool { return settled(ctl, j.ID(), 4) })
	if err := ctl.ShrinkJob(j.ID(), ""); err != nil {
		t.Fatal(err)
	}
	during("shrink", "fresh/shrink")
	waitFor(t, time.Minute, "the shrink to end", func() bool { return settled(ctl, j.ID(), 3) })
	for i := 0; i < n; i++ {
		if v, err := j.Get(ctx, key(i)); err != nil || string(v) != "original" {
			t.Fatalf("get %s after the changes: %q, %v", key(i), v, err)
		}
	}
	for k, want := range map[string]string{"fresh/grow": "first", "fresh/shrink": "first"} {
		if v, err := j.Get(ctx, k); err != nil || string(v) != want {
			t.Errorf("get %s: %q, %v; want %q", k, v, err, want)
		}
	}
}

// TestIfAbsentPutSeesTheOldOwner: with a key's value at its old owner
// only (a map set by hand in the middle of a join and of a drain, no
// mover), a put-if-absent answers exists and the value stays; a key
// that holds none anywhere takes it. Before, it stored over the value.
func TestIfAbsentPutSeesTheOldOwner(t *testing.T) {
	for _, join := range []bool{true, false} {
		t.Run(fmt.Sprint("join=", join), func(t *testing.T) {
			mk := newOwnerChange(t, join, 1<<20)
			j, key, ctx := mk.j, mk.key, context.Background()
			if err := j.Put(ctx, key, []byte("v1")); err != nil {
				t.Fatal(err)
			}
			mk.change()
			if r := j.route([]byte(key), 0); r.old == "" {
				t.Fatalf("key %q: its owner does not change", key)
			}
			put := func(k string) error {
				_, _, err := j.doReq(ctx, wire.OpPut, wire.FlagIfAbsent, []byte(k), 0, reqExtra{version: newVersion()}, []byte("v2"), nil)
				return err
			}
			if err := put(key); !errors.Is(err, wire.ErrExists) {
				t.Errorf("if-absent put of a key held by its old owner: %v; want exists", err)
			}
			if v, err := j.Get(ctx, key); err != nil || string(v) != "v1" {
				t.Errorf("get after it: %q, %v; want v1", v, err)
			}
			if err := put(key + "-new"); err != nil {
				t.Errorf("if-absent put of a new key: %v", err)
			}
		})
	}
}
