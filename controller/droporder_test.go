package controller

import (
	"context"
	"fmt"
	"testing"
	"time"

	dataclient "github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// TestDropOrderReachesRealNodes: a deregistration's drop orders are taken
// by guarded nodes, each made for its node's address and incarnation: the
// one from the node's registration, or, for a node registered without one
// (0: an older agent), the one the node proves when asked first
// (askIncarnationOnce). Values put with FlagPersist stay.
func TestDropOrderReachesRealNodes(t *testing.T) {
	for _, tc := range []struct {
		name        string
		incarnation bool
	}{{"registered incarnation", true}, {"incarnation asked", false}} {
		t.Run(tc.name, func(t *testing.T) {
			n := guardedNode(t, netio.Config{Loops: 1})
			addr := n.Addr().String()
			c := newTest(t, Config{Secret: testSecret, Logger: quietLog, DropTimeout: 2 * time.Second})
			reg := dramNode(addr, 1<<30, 8000)
			if tc.incarnation {
				reg.Incarnation = n.Incarnation()
			}
			mustRegister(t, c, reg)
			m, err := c.RegisterJob("drop", wire.JobHints{})
			if err != nil {
				t.Fatal(err)
			}
			cl := dataclient.New(dataclient.Options{})
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for key, flags := range map[string]uint16{"tmp": 0, "kept": wire.FlagPersist} {
				req := wire.Request{Job: []byte(m.Job), Key: []byte(key), Token: m.Token, Epoch: m.Epoch}
				if _, err := cl.Do(ctx, addr, wire.OpPut, flags, &req, []byte("value"), nil); err != nil {
					t.Fatalf("put %s: %v", key, err)
				}
			}
			res, err := c.DeregisterJob(ctx, m.Job, m.Token)
			if err != nil {
				t.Fatal(err)
			}
			if res.Nodes != 1 || res.Failed != 0 || res.Values != 1 {
				t.Fatalf("deregistration dropped %d values on %d nodes, %d failed (%s); want 1 value on 1 node",
					res.Values, res.Nodes, res.Failed, res.Message)
			}
		})
	}
}

// TestDropOrderTriedAgainAfterItsConnectionFailed: the node's one slot is
// held by a proven client and it has no reserve, so the controller's
// first drop order is refused at accept; the slot is then freed, and the
// order's next try is taken. Before, the deregistration reported the node
// "did not drop" (a hostile trial flooding a node from the controller's
// address: 3 of 6).
func TestDropOrderTriedAgainAfterItsConnectionFailed(t *testing.T) {
	n := guardedNode(t, netio.Config{Loops: 1, MaxConns: 1, ReserveConns: -1})
	addr := n.Addr().String()
	c := newTest(t, Config{Secret: testSecret, Logger: quietLog, DropTimeout: 3 * time.Second})
	reg := dramNode(addr, 1<<30, 8000)
	reg.Incarnation = n.Incarnation()
	mustRegister(t, c, reg)
	m, err := c.RegisterJob("drop", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	holder := dataclient.New(dataclient.Options{ConnsPerNode: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := wire.Request{Job: []byte(m.Job), Key: []byte("k"), Token: m.Token, Epoch: m.Epoch}
	if _, err := holder.Do(ctx, addr, wire.OpPut, 0, &req, []byte("value"), nil); err != nil { // proven: not evicted
		t.Fatalf("put: %v", err)
	}
	go func() { // free the slot once the controller's connection was refused
		for n.Stats().Net.Refused == 0 && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		holder.Close()
	}()
	res, err := c.DeregisterJob(ctx, m.Job, m.Token)
	if err != nil {
		t.Fatal(err)
	}
	if res.Nodes != 1 || res.Failed != 0 || res.Values != 1 {
		t.Fatalf("deregistration dropped %d values on %d nodes, %d failed (%s); want 1 value on 1 node after a second try",
			res.Values, res.Nodes, res.Failed, res.Message)
	}
}

// guardedNode starts a storage node with a 64 MiB DRAM tier that checks
// tokens and orders with testSecret, on net, closed when the test ends.
func guardedNode(t *testing.T, net netio.Config) *dataplane.Node {
	t.Helper()
	d, err := dataplane.NewDRAM(64<<20, dataplane.DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	n, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", DRAM: d, Guard: dataplane.NewTokenGuard(testSecret), Net: net})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// spareRig is a controller with one guarded node of a 64 MiB DRAM tier
// registered, and a data client, for the tests of what drops free.
type spareRig struct {
	n    *dataplane.Node
	addr string
	c    *Controller
	cl   *dataclient.Client
	ctx  context.Context
}

func newSpareRig(t *testing.T) *spareRig {
	t.Helper()
	n := guardedNode(t, netio.Config{Loops: 1})
	r := &spareRig{n: n, addr: n.Addr().String(), c: newTest(t, Config{Secret: testSecret, Logger: quietLog, DropTimeout: 2 * time.Second})}
	reg := dramNode(r.addr, 64<<20, 8000)
	reg.Incarnation = n.Incarnation()
	mustRegister(t, r.c, reg)
	r.cl = dataclient.New(dataclient.Options{})
	t.Cleanup(func() { r.cl.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	r.ctx = ctx
	return r
}

// job registers a job named name with a capacity hint of mib MiB and puts
// mib values of 1 MiB less 4 KiB into it.
func (r *spareRig) job(t *testing.T, name string, mib int) *wire.PlacementMap {
	t.Helper()
	m, err := r.c.RegisterJob(name, wire.JobHints{CapacityBytes: int64(mib) << 20})
	if err != nil {
		t.Fatal(err)
	}
	for i := range mib {
		req := wire.Request{Job: []byte(m.Job), Key: fmt.Appendf(nil, "k%d", i), Token: m.Token, Epoch: m.Epoch}
		if _, err := r.cl.Do(r.ctx, r.addr, wire.OpPut, 0, &req, make([]byte, 1<<20-4096), nil); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	return m
}

// dramStat is the node's DRAM tier with u bytes used, as a heartbeat says.
func dramStat(u int64) []wire.TierStat {
	return []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 64 << 20, UsedBytes: u, Mbps: 8000}}
}

// usedSeen is the node's DRAM used bytes as the controller counts them.
func (r *spareRig) usedSeen() int64 {
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	return r.c.nodes[r.addr].tier(kindDRAM).UsedBytes
}

// TestDroppedBytesAreSpareAtOnce: the bytes a deregistered job's nodes
// freed on its drop orders are spare at once, not from their next
// heartbeat: a job asking for them registers right after. Before, the
// node's last heartbeat still counted the dropped job's bytes, and a new
// user's job registered right after another ended was refused space (or
// placed on a costlier tier) until the next heartbeat.
func TestDroppedBytesAreSpareAtOnce(t *testing.T) {
	r := newSpareRig(t)
	m := r.job(t, "first", 40)
	used := r.n.Tiers()[0].Usage().Used
	r.c.heartbeat(&wire.Heartbeat{Addr: r.addr, Tiers: dramStat(used)})
	if _, err := r.c.DeregisterJob(r.ctx, m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	if _, err := r.c.RegisterJob("second", wire.JobHints{CapacityBytes: 40 << 20}); err != nil {
		t.Fatalf("a job asking for the bytes the first freed, registered right after: %v (the node's last heartbeat counted %d bytes used)", err, used)
	}
}

// TestDropReportedAgainIsNotTakenTwice: a node that dropped a job on
// hearing of its revocation reports that drop again in the controller's
// order (what it freed unasked); its heartbeat since counted the bytes
// gone and listed its jobs without that one, so they are not taken off
// its used bytes again. Before, they were: a hostile re-check read another
// job's 500 MiB on the node as 0 used until the next heartbeat.
func TestDropReportedAgainIsNotTakenTwice(t *testing.T) {
	r := newSpareRig(t)
	keeper, gone := r.job(t, "keeper", 8), r.job(t, "gone", 8)
	r.n.ApplyAck(&wire.NodeAck{Known: true, State: wire.NodeActive, Rev: 1, Full: true,
		Jobs: []wire.JobEpoch{{Job: keeper.Job, Epoch: keeper.Epoch}, {Job: gone.Job, Epoch: gone.Epoch}}})
	r.n.ApplyAck(&wire.NodeAck{Known: true, State: wire.NodeActive, Rev: 2, Jobs: []wire.JobEpoch{{Job: gone.Job, Revoked: true}}})
	dram := r.n.Tiers()[0]
	for deadline := time.Now().Add(5 * time.Second); dram.JobUsage([]byte(gone.Job)) != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the node did not drop the revoked job")
		}
	}
	used, kept := dram.Usage().Used, dram.JobUsage([]byte(keeper.Job))
	r.c.heartbeat(&wire.Heartbeat{Addr: r.addr, Incarnation: r.n.Incarnation(), Tiers: dramStat(used),
		Loads: []wire.JobLoad{{Job: keeper.Job, Bytes: kept}}})
	res, err := r.c.DeregisterJob(r.ctx, gone.Job, gone.Token)
	if err != nil {
		t.Fatal(err)
	}
	if res.Bytes == 0 {
		t.Fatalf("the order reported no bytes freed: %+v (the test needs the node's own drop reported again)", res)
	}
	if got := r.usedSeen(); got != used {
		t.Fatalf("the node counts %d bytes used after the drop its heartbeat had counted (%d), which the order reported again (%d)", got, used, res.Bytes)
	}
}

// TestDropAfterAnEarlyHeartbeatIsNotTakenTwice: when a node's used bytes
// came from an early heartbeat (one a client can cause, whose per-job
// bytes are not kept), whether they still counted a dropped job's bytes
// is not known, and the drop order's freed bytes are not taken off them.
// Before, a hostile re-check had the node heartbeat every 50 ms; an early
// heartbeat had already counted the job's bytes gone, they were taken
// again, and a 100 MiB job was allotted a node's last 64 MiB.
func TestDropAfterAnEarlyHeartbeatIsNotTakenTwice(t *testing.T) {
	r := newSpareRig(t)
	m := r.job(t, "gone", 8)
	dram := r.n.Tiers()[0]
	held := dram.JobUsage([]byte(m.Job))
	used := dram.Usage().Used + 20<<20 // as if other jobs held 20 MiB more
	r.c.heartbeat(&wire.Heartbeat{Addr: r.addr, Incarnation: r.n.Incarnation(), Tiers: dramStat(used), Loads: []wire.JobLoad{{Job: m.Job, Bytes: held}}})
	early := used - held // an early heartbeat after the node dropped the job itself
	r.c.heartbeat(&wire.Heartbeat{Addr: r.addr, Incarnation: r.n.Incarnation(), Early: true, Tiers: dramStat(early)})
	if _, err := r.c.DeregisterJob(r.ctx, m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	if got := r.usedSeen(); got != early {
		t.Fatalf("the node counts %d bytes used; its early heartbeat had counted %d, the job's %d bytes gone already", got, early, held)
	}
}
