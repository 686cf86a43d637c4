package dataplane

import (
	"sync"

	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// Drops off the heartbeat
//
// The agent applies the controller's heartbeat acks on the goroutine that
// sends the heartbeats (metaclient.NodeLoop.OnAck). A job the ack revokes,
// or an orphan it orders dropped, used to be dropped there, and a drop's
// work grows with the job's keys: a hostile trial's job of 332,000 NVMe
// values took 0.5-1.5 s to drop, and one drop first waits up to
// commitWait (2 s) for the job's puts still committing. Meanwhile no
// heartbeat went out, and a node silent for the controller's DeadAfter
// (3 s) is marked dead, its lease lapses and it stops serving every job.
// So those drops run on goroutines of their own (bgDrops), one per job at
// a time: a job ordered dropped again while its drop runs (the controller
// orders an orphan dropped at every heartbeat until the node stops
// reporting it) is not dropped twice at once. Node.Close waits for them.
//
// The controller's drop order (wire.OpDropJob) runs on a goroutine of its
// own too (dropOrder), answered from its connection's loop: on the event
// loop that read it, a hostile trial's order to drop that job held the
// loop's other connections, other jobs' DRAM gets among them, for the
// whole drop (TestDropOrderLeavesTheLoopFree). Not on the scan lane: the
// lane drops what waits there when its connection's input ends, and an
// order, its nonce taken, must run (a reserve connection, netio's, ends
// its input after its one request).
type bgDrops struct {
	mu      sync.Mutex
	running map[string]chan struct{} // closed when the job's drop ends
	closed  bool                     // close was called: what comes after runs on its caller
	wg      sync.WaitGroup           // added to under mu, before closed, so never beside its Wait
	// busy counts the goroutines started here still running, under mu
	// (wait). The WaitGroup's own Wait may not run beside an Add that
	// takes it from zero, which a drop order's may: a test that waited
	// for the drops and then sent an order raced under -race.
	busy int
	idle *sync.Cond // signalled when busy falls to zero; on mu
}

// start runs drop for job on a goroutine of its own, unless a drop of
// job started here is still running; on the caller once the node closes.
func (b *bgDrops) start(job string, drop func()) {
	b.mu.Lock()
	if b.running[job] != nil {
		b.mu.Unlock()
		return
	}
	if b.closed {
		b.mu.Unlock()
		drop()
		return
	}
	if b.running == nil {
		b.running = map[string]chan struct{}{}
	}
	done := make(chan struct{})
	b.running[job] = done
	b.begin()
	b.mu.Unlock()
	go func() {
		defer b.finish()
		defer b.end(job, done)
		drop()
	}()
}

func (b *bgDrops) end(job string, done chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.running, job)
	close(done)
}

// begin counts a goroutine started here; mu is held.
func (b *bgDrops) begin() {
	b.wg.Add(1)
	b.busy++
}

// finish is a goroutine's end.
func (b *bgDrops) finish() {
	b.mu.Lock()
	b.busy--
	if b.busy == 0 && b.idle != nil {
		b.idle.Broadcast()
	}
	b.mu.Unlock()
	b.wg.Done()
}

// awaitListed waits for the drops still running of the jobs an ack lists
// live: a drop deletes by the job's id, so one of an older job under the
// same id (another controller run's, an orphan's) must end before the
// new job is entered, or it would delete the new job's first values, as
// the drop on the heartbeat's goroutine could not.
func (b *bgDrops) awaitListed(jobs []wire.JobEpoch) {
	for i := range jobs {
		if jobs[i].Revoked {
			continue
		}
		b.mu.Lock()
		done := b.running[jobs[i].Job]
		b.mu.Unlock()
		if done != nil {
			<-done
		}
	}
}

// run runs f on a goroutine that wait waits for; on the caller once the
// node closes.
func (b *bgDrops) run(f func()) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		f()
		return
	}
	b.begin()
	b.mu.Unlock()
	go func() {
		defer b.finish()
		f()
	}()
}

// wait returns once no drop started here runs; more may start after.
func (b *bgDrops) wait() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.idle == nil {
		b.idle = sync.NewCond(&b.mu)
	}
	for b.busy > 0 {
		b.idle.Wait()
	}
}

// close makes what comes later run on its caller, and waits for the
// drops running (Node.Close).
func (b *bgDrops) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.wg.Wait()
}

// orderReply is what a drop order promises its connection
// (netio.Conn.Expect) until it is answered: its reply's header and
// metadata (counts and a proof).
const orderReply = wire.HeaderLen + 1024

// dropOrder serves the controller's drop order, checked (admit), off the
// event loop: the drop runs on a goroutine of its own and the reply is
// written from the connection's loop. Orders need the cluster's secret, so
// they are few; one goroutine each.
func (n *Node) dropOrder(c *netio.Conn, cs *connState, h *wire.Header) {
	hc, start, r := *h, cs.start, laneRequest(&cs.req)
	c.Expect(orderReply) // taken back when answered
	n.bg.run(func() {
		resp, err := n.dropJob(&hc, &r)
		c.Loop().Post(func() {
			c.Expect(-orderReply)
			n.answerOffLoop(c, cs, &hc, start, resp, err)
		})
	})
}
