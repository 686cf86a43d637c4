package dataplane

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/nvme"
	"github.com/pocketstore/pocket/wire"
)

// TestClientBoundedOnANodeByItsQuota (hostile re-check, 2026-12-07): the
// byte quota's bound on one node (wire.JobEpoch.MaxBytes) is on what all
// the jobs of the job's owner hold there, on every tier, not on each job:
// a put that would take them past it is refused with CodeLimit; another
// owner's job is not, and a delete of the first owner's makes room. Before,
// each job had the whole bound: 8 jobs of one client registered at once
// stored 512 MiB on a 64 MiB quota. Each tier counts the owner's bytes.
func TestClientBoundedOnANodeByItsQuota(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags uint16
	}{{"dram", 0}, {"nvme", wire.FlagTierNVMe}} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := NewDRAM(64<<20, DRAMOptions{})
			if err != nil {
				t.Fatal(err)
			}
			nv := fileNVMe(t, nvme.Options{Size: 64 << 20, BufferPool: 16 << 20}, NVMeOptions{})
			n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", DRAM: d, NVMe: nv, Guard: NewTokenGuard(jtSecret), Net: netio.Config{Loops: 2}}, d)
			const bound = 64 << 10
			n.ApplyAck(syncAck(100,
				wire.JobEpoch{Job: "a-1", Gen: 91, Epoch: 1, Owner: "tenant-a", MaxBytes: bound},
				wire.JobEpoch{Job: "a-2", Gen: 92, Epoch: 1, Owner: "tenant-a", MaxBytes: bound},
				wire.JobEpoch{Job: "b-1", Gen: 93, Epoch: 1, Owner: "tenant-b", MaxBytes: bound}))
			put := func(job string, gen uint64, key string, size int) error {
				c := dial(t, n, job)
				req := &wire.Request{Job: []byte(job), Key: []byte(key), Token: jobTok(job, gen), Epoch: 1}
				r := roundTrip(t, c, wire.OpPut, tc.flags, req, make([]byte, size))
				return r.Err()
			}
			refused := func(err error) bool {
				var we *wire.Error
				return errors.As(err, &we) && we.Code == wire.CodeLimit && strings.Contains(we.Msg, "byte quota")
			}
			if err := put("a-1", 91, "x", 40<<10); err != nil {
				t.Fatalf("the first job's put within the bound: %v", err)
			}
			if err := put("a-2", 92, "y", 40<<10); !refused(err) {
				t.Fatalf("the same owner's second job's put past the bound beside the first's: %v, want CodeLimit naming the byte quota", err)
			}
			if err := put("b-1", 93, "z", 40<<10); err != nil {
				t.Fatalf("another owner's put within its own bound: %v", err)
			}
			c := dial(t, n, "a-1")
			r := roundTrip(t, c, wire.OpDelete, tc.flags, &wire.Request{Job: []byte("a-1"), Key: []byte("x"), Token: jobTok("a-1", 91), Epoch: 1}, nil)
			if err := r.Err(); err != nil {
				t.Fatal(err)
			}
			if err := put("a-2", 92, "y", 40<<10); err != nil {
				t.Fatalf("the second job's put once the first's delete made room: %v", err)
			}
		})
	}
}

// TestPutsUnderWayCountInTheNodeBound (hostile trial, 2026-12-08): the
// bytes of an owner's puts admitted and not yet committed count in the
// byte quota's bound on the node: while one job's put of 40 KiB waits for
// its payload, the same owner's other job's 40 KiB put past the 64 KiB
// bound is refused; once the first is stored, it is refused for the
// stored bytes; a dropped put under way gives its bytes back. Checked
// against committed bytes alone, puts under way all passed: a hostile
// trial's 120 concurrent puts of 4 MiB stored 248 MiB on a 64 MiB quota.
func TestPutsUnderWayCountInTheNodeBound(t *testing.T) {
	d := newDRAMTier(t, 64<<20)
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", DRAM: d, Guard: NewTokenGuard(jtSecret),
		Net: netio.Config{Loops: 2, MinSinkRate: -1}}, d)
	const bound = 64 << 10
	n.ApplyAck(syncAck(100,
		wire.JobEpoch{Job: "a-1", Gen: 91, Owner: "tenant-a", MaxBytes: bound},
		wire.JobEpoch{Job: "a-2", Gen: 92, Owner: "tenant-a", MaxBytes: bound}))
	put := func(job string, gen uint64, key string) error {
		return jobOpValue(t, n, job, key, jobTok(job, gen), make([]byte, 40<<10), 0)
	}
	refused := func(err error) bool {
		var we *wire.Error
		return errors.As(err, &we) && we.Code == wire.CodeLimit && strings.Contains(we.Msg, "byte quota")
	}
	nc := announcePut(t, n, "a-1", "x", jobTok("a-1", 91), 40<<10)
	deadline := time.Now().Add(10 * time.Second)
	for n.quotaPending("o tenant-a") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the announced put was not counted under way")
		}
		time.Sleep(time.Millisecond)
	}
	if err := put("a-2", 92, "y"); !refused(err) {
		t.Fatalf("a put past the bound beside the owner's put under way: %v, want CodeLimit naming the byte quota", err)
	}
	nc.Close() // the put under way is dropped: its bytes go back
	for n.quotaPending("o tenant-a") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the dropped put's bytes were not given back")
		}
		time.Sleep(time.Millisecond)
	}
	if err := put("a-2", 92, "y"); err != nil {
		t.Fatalf("a put within the bound once the put under way was dropped: %v", err)
	}
	if err := put("a-1", 91, "x"); !refused(err) {
		t.Fatalf("a put past the bound beside the owner's stored value: %v, want CodeLimit naming the byte quota", err)
	}
}

// TestJobsCostTheirOwnersBound (hostile trial, 2026-12-08): each of an
// owner's jobs holding values on the node costs its bound jobEntryCost
// beside its bytes, so small values of many jobs cannot pin the node's
// memory under a quota that counts their bytes alone: a trial's 11,500
// ended jobs of one byte each grew a node by 92 MB. With a bound of 8
// jobs' cost, the owner's 10th job's first put is refused (a job's own
// cost counts from its first value on).
func TestJobsCostTheirOwnersBound(t *testing.T) {
	n := tokenNode(t)
	const jobs = 10
	var entries []wire.JobEpoch
	for i := range jobs {
		entries = append(entries, wire.JobEpoch{Job: fmt.Sprintf("p-%d", i), Gen: uint64(90 + i), Epoch: 1, Owner: "tenant-p", MaxBytes: 8 * jobEntryCost})
	}
	n.ApplyAck(syncAck(100, entries...))
	stored := 0
	for i := range jobs {
		job := fmt.Sprintf("p-%d", i)
		err := jobOp(t, n, wire.OpPut, job, "k", jobTok(job, uint64(90+i)), 1, 0)
		if err == nil {
			stored++
			continue
		}
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != wire.CodeLimit {
			t.Fatalf("job %d's one-byte put: %v", i, err)
		}
	}
	if stored != 8 {
		t.Fatalf("%d of %d jobs of one owner stored a value under a bound of 8 jobs' cost; want 8", stored, jobs)
	}
}
