package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	dataclient "github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/wire"
)

// dropAll asks every node of the map that is not dead to drop the job's
// data, in parallel, and sums the replies. Each order is made for its
// node's address and incarnation (token.OrderProof, keyed with the job's
// order key, which is never sent): the registry's, else the one the node
// proves when asked (askIncarnationOnce). mayKeep is whether a node may
// keep some of the job's bytes: one said so, or did not prove it keeps
// none (dataclient.Dropped.KeptProved), or did not answer. What each node
// freed leaves its used bytes at once (noteFreed); tier is the job's.
func (c *Controller) dropAll(ctx context.Context, job string, tier uint8, nodes []wire.MapNode) (_ *wire.DropResult, mayKeep bool) {
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		res  wire.DropResult
		errs []string
	)
	key := token.OrderKey(c.cfg.Secret, []byte(job))
	cl := dataclient.New(dataclient.Options{ConnsPerNode: 1, DialTimeout: c.cfg.DropTimeout})
	defer cl.Close()
	for _, n := range nodes {
		if n.State == wire.NodeDead {
			mu.Lock()
			res.Failed++
			errs = append(errs, n.Addr+wire.DropDeadSuffix)
			mu.Unlock()
			continue
		}
		wg.Add(1)
		go func(addr string) {
			defer wg.Done()
			d, err := c.dropOne(ctx, cl, addr, job, key, false)
			if err == nil {
				c.noteFreed(addr, job, tier, d.Freed)
				c.noteKept(addr, job, d)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.Failed++
				errs = append(errs, err.Error()) // names the node
				mayKeep = true
				return
			}
			mayKeep = mayKeep || d.Kept != 0 || !d.KeptProved
			res.Nodes++
			res.Values += d.Values
			res.Bytes += d.Freed
		}(n.Addr)
	}
	wg.Wait()
	res.Message = strings.Join(errs, "; ")
	return &res, mayKeep || res.Failed > 0
}

// noteKept records, on the ended job's final map, the bytes the node at
// addr said it keeps of the job (its persisted values) in its answer to
// the drop order, when the node proved the answer: they count against the
// client's byte quota until the node's heartbeats report the job's end
// applied (persistedOnLocked). Before, the job's bytes in the node's last
// per-job figures counted until then, which leave out what it put since
// the heartbeat before: a hostile trial's client registered, put 60 MiB
// of persisted values, deregistered and registered again at once, three
// times in turn, and stored 180 MiB on a 64 MiB quota.
func (c *Controller) noteKept(addr, job string, d dataclient.Dropped) {
	if !d.KeptProved {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.ended.ids[job]
	if e == nil {
		return
	}
	if e.kept == nil {
		e.kept = make(map[string]int64, len(e.nodes))
	}
	e.kept[addr] = max(d.Kept, 0)
}

// noteFreed takes the bytes the node at addr freed on a drop order off
// its used bytes on the job's tier, which its heartbeats
// report: until its next heartbeat they counted what had just been
// dropped, and a job registered right after another ended was refused
// space, or placed on a costlier tier, for the ended job's bytes (a new
// user's trial: a 700 MiB job deregistered, and the same job registered
// again at once was told no tier had its 630 MiB spare; 3 s later it
// fitted). The next heartbeat's figures replace these.
//
// It takes at most the job's bytes there as the node's latest heartbeat
// listed them, which its used bytes count, and none when that
// heartbeat's whole list did not name the job: the node had dropped it
// on hearing of its revocation, and the order reports that drop again
// (jobEntry.unreported). Taken whole, such a drop's bytes were taken
// twice, and a hostile re-check read another job's 500 MiB as 0 used
// until the next heartbeat.
func (c *Controller) noteFreed(addr, job string, tier uint8, freed int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[addr]
	if n == nil {
		return
	}
	if !n.tiersKept {
		// The used bytes came from an early or hurried heartbeat, whose
		// per-job bytes jobLoads does not hold: whether they counted the
		// job's is not known. A hostile re-check sent the node requests
		// ahead of its epoch, so that it heartbeat every 50 ms, and the
		// job's bytes, gone from such a heartbeat's used bytes, were
		// taken again: a 100 MiB job was allotted a node's last 64 MiB.
		return
	}
	if l := &n.jobLoads; l.reports && l.n > 0 {
		switch b, listed := l.held(job); {
		case listed:
			freed = min(freed, b)
		case !unlisted(l, job):
			freed = 0
		}
	}
	if t := n.tier(tier); t != nil && freed > 0 {
		t.UsedBytes -= min(freed, max(t.UsedBytes, 0)) // the job's puts go to its tier alone
	}
	if l := c.loads[addr]; l != nil {
		l.unusedOK = false
	}
}

// dropOne asks the node at addr to drop the job's data, bounded by
// DropTimeout, through the one data-plane client (dataclient.Client.
// DropJobAt), and returns the values removed and the bytes freed. The
// order is bound to the node's incarnation as registered; for a node whose
// incarnation the registry does not know (0: registered by a node or
// stored by a controller from before incarnations), the node is asked
// first, once (askIncarnationOnce checks its proof of the secret). lost:
// the node is one the job lost, and drops the job's persistent values too
// (dataclient.Client.DropLostJobAt).
func (c *Controller) dropOne(ctx context.Context, cl *dataclient.Client, addr, job string, key []byte, lost bool) (dataclient.Dropped, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DropTimeout)
	defer cancel()
	inc, err := c.orderIncarnation(ctx, cl, addr)
	if err != nil {
		return dataclient.Dropped{}, fmt.Errorf("drop job %s at %s: %w", job, addr, err)
	}
	for attempt := 0; ; attempt++ {
		var d dataclient.Dropped
		if lost {
			d, err = cl.DropLostJobAt(ctx, addr, job, key, inc)
		} else {
			d, err = cl.DropJobAt(ctx, addr, job, key, inc)
		}
		if err == nil || attempt >= len(dropRetry) || !errors.Is(err, wire.ErrUnavailable) || !sleepCtx(ctx, dropRetry[attempt]) {
			return d, err
		}
	}
}

// dropRetry is the pause before each new try (two at most) of a drop
// order whose connection failed (wire.ErrUnavailable: refused at the
// node's limits, or lost). Each try is a new order (its own nonce), and a
// drop is idempotent: one the node took before its reply was lost leaves
// the next nothing to drop (its figures then count 0). A hostile trial flooding a node from
// the controller's own address had 3 of 6 deregistrations report "did not
// drop" ("connection reset by peer"), though the node took the order's
// place at its next heartbeat.
var dropRetry = []time.Duration{100 * time.Millisecond, 300 * time.Millisecond}

// orderIncarnation is the incarnation the controller's orders to the node
// at addr are made for: the registry's, else the one the node proves when
// asked once through cl (askIncarnationOnce: a node registered by a node
// or stored by a controller from before incarnations).
func (c *Controller) orderIncarnation(ctx context.Context, cl *dataclient.Client, addr string) (uint64, error) {
	c.mu.Lock()
	var inc uint64
	if n := c.nodes[addr]; n != nil {
		inc = n.incarnation
	}
	c.mu.Unlock()
	if inc != 0 {
		return inc, nil
	}
	inc, err := c.askIncarnationOnce(ctx, cl, addr)
	if err != nil {
		return 0, fmt.Errorf("its incarnation: %w", err)
	}
	return inc, nil
}
