package agent

import (
	"context"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/wire"
)

// TestDrainWaitsForCommitsInFlight: a put that passed its drain check just
// before the node began draining is still being written (an NVMe write
// takes a while; here a hook holds the commit) when the drainer starts.
// The drain must not end before that value is stored and moved. On the
// code before Node.AwaitCommits the drainer's first pass counted no
// values, called the drain done, and the acknowledged value stayed on the
// draining node, to be lost with it.
func TestDrainWaitsForCommitsInFlight(t *testing.T) {
	n, gate := slowCommitNode(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	a := &moveNode{n: n, addr: n.Addr().String(), a: &agent{cfg: Config{Node: n, Addr: n.Addr().String(), Logger: quietLog}, ctx: ctx}}
	b := newMoveNodes(t, 1, &fakeMaps{})[0]
	a.ack(1, 1)
	b.ack(1, 2)
	tok, _ := a.n.JobToken(moveJob)

	put := putInCommit(t, a, tok, gate)
	src := &fakeMaps{}
	src.publish(mapOf(tok, 2, a, wire.NodeDraining, b, wire.NodeActive))
	n.SetDraining(true) // as agent.ack: the flag, then the drainer
	dr := startDrainer(ctx, n, src, a.addr, quietLog)
	t.Cleanup(dr.stop)
	time.Sleep(300 * time.Millisecond) // the old drainer's first pass ends here
	close(gate.open)
	if err := <-put; err != nil {
		t.Fatalf("the put admitted before the drain: %v", err)
	}
	waitFor(t, "the drain to end", func() bool {
		dr.mu.Lock()
		defer dr.mu.Unlock()
		return dr.done
	})
	if left := n.JobValues(moveJob); left != 0 {
		t.Fatalf("the drain ended with %d acknowledged value(s) left on the draining node", left)
	}
	if got, err := do(t, b, wire.OpGet, tok, 2, "slow", nil); err != nil || string(got) != "acknowledged" {
		t.Fatalf("the value at its new owner: %q, %v", got, err)
	}
}

// TestMoveWaitsForCommitsInFlight is the same for one job's map change:
// a put admitted at the old epoch is still being written when the node
// leaves the job's map; the mover must not report the move done before
// that value is stored and moved to its owner. On the code before
// Node.AwaitMoveCommits the move was reported done with the value left
// on the node leaving the map.
func TestMoveWaitsForCommitsInFlight(t *testing.T) {
	n, gate := slowCommitNode(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	src := &fakeMaps{}
	data := client.New(client.Options{ConnsPerNode: 2})
	t.Cleanup(func() { _ = data.Close() })
	m := newMover(n, src, data, n.Addr().String(), quietLog)
	m.start(ctx, nil)
	t.Cleanup(m.stop)
	a := &moveNode{n: n, addr: n.Addr().String(), a: &agent{cfg: Config{Node: n, Addr: n.Addr().String(), Logger: quietLog}, ctx: ctx, move: m}}
	b := newMoveNodes(t, 1, src)[0]
	a.ack(1, 1)
	b.ack(1, 1)
	tok, _ := a.n.JobToken(moveJob)

	put := putInCommit(t, a, tok, gate)
	src.publish(mapOf(tok, 2, a, wire.NodeDraining, b, wire.NodeActive))
	a.ack(2, 2)
	b.ack(2, 2)
	time.Sleep(300 * time.Millisecond)
	close(gate.open)
	if err := <-put; err != nil {
		t.Fatalf("the put admitted before the change: %v", err)
	}
	waitFor(t, "the move to be reported done", func() bool { return reported(a, wire.MoveReport{Job: moveJob, Epoch: 2}) })
	if left := n.JobValues(moveJob); left != 0 {
		t.Fatalf("the move was reported done with %d value(s) left on the node leaving the map", left)
	}
	if got, err := do(t, b, wire.OpGet, tok, 2, "slow", nil); err != nil || string(got) != "acknowledged" {
		t.Fatalf("the value at its new owner: %q, %v", got, err)
	}
}

// commitGate holds the commit of key "slow": entered closes when it
// begins, and it goes on once open is closed.
type commitGate struct{ entered, open chan struct{} }

// slowCommitNode is a guarded node on one loop whose DRAM tier holds the
// commit of key "slow" at its gate, as a long NVMe write would.
func slowCommitNode(t *testing.T) (*dataplane.Node, commitGate) {
	t.Helper()
	d, err := dataplane.NewDRAM(16<<20, dataplane.DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	f := dataplane.NewFaulty(d)
	g := commitGate{entered: make(chan struct{}), open: make(chan struct{})}
	f.SetHook(func(op dataplane.FaultOp, _, key []byte) error {
		if op == dataplane.FaultCommit && string(key) == "slow" {
			close(g.entered)
			<-g.open
		}
		return nil
	})
	return guardedTierNode(t, f, 1), g
}

// putInCommit puts "slow" to mn at epoch 1 and returns once its commit is
// held at g; the put's result comes on the channel.
func putInCommit(t *testing.T, mn *moveNode, tok []byte, g commitGate) <-chan error {
	t.Helper()
	put := make(chan error, 1)
	go func() {
		_, err := do(t, mn, wire.OpPut, tok, 1, "slow", []byte("acknowledged"))
		put <- err
	}()
	select {
	case <-g.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the put never reached its commit")
	}
	return put
}
