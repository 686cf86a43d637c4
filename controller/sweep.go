package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	dataclient "github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/wire"
)

// Sweeping an ended job's chunks that no manifest names
//
// A persist-after-job value larger than a chunk outlives its job as its
// chunks and a manifest naming their version. Chunks whose manifest is
// gone (a writer that stopped between confirming its chunks and
// publishing, a manifest that went with a restarted node, an old version
// whose replacing writer stopped before dropping it) outlived the job
// too, named by nothing, until `pocket rm --all` (a hostile trial left
// 26-28 MB so on two nodes). When a job ends, once every node of its map
// at its end and of its final map (the one clients were handed last) has
// dropped its data (so none takes its puts any more: dataplane's
// versionOrderAllowed), the controller asks each for the versions its
// manifests name and the versions it holds chunks of (wire.OpVersions;
// each answer proved by the node, since the data plane is plain TCP and
// the sweep drops by what they say), and orders each to drop the versions
// no manifest on any of them names (wire.OpDropVersions). Those are the
// job's only nodes that may hold a manifest: a node the job lost drops
// what it holds of the job when it comes back, so chunks its manifests
// named can be read through no map. A job with a dead node in its map, or
// a node that did not drop, is swept only once every one serves and has
// applied the job's end (sweepDeferred): the dead node may come back with
// manifests. A failed sweep is tried again (maxSweepTries), and a restore
// sweeps every ended job it enters; `pocket
// rm --all` still frees what is left when no try succeeds.

// sweepMaxBusy bounds how long a sweep waits out a node that answers busy
// (the job's data still being dropped there, by its revocation): patient.
const sweepMaxBusy = 5 * time.Second

// maxSweeps bounds the sweeps that run at once (each with a connection
// to each node of the job's map); the others wait their turn in
// Controller.unswept, without a goroutine each.
const maxSweeps = 4

// sweepTimeout bounds a whole sweep: a node that stops answering holds a
// sweep's slot (maxSweeps) no longer.
const sweepTimeout = time.Minute

// sweepResult is what a sweep dropped: versions, their chunks and bytes.
type sweepResult struct {
	versions int
	chunks   uint64
	bytes    int64
}

// sweepAfterDrop queues the sweep of job's unnamed chunks (sweepEnded)
// after its drop to nodes, the job's map at its end. The sweep covers
// those nodes and the nodes of the job's final map (the map clients were
// handed last, so the one its credential reads by): the two differ for a
// moment after a map change, and a node in the final map alone got no
// drop order (a hostile trial ended a job just after a dead node left its
// map and before the change was handed out: the node came back with
// manifests the sweep had not asked for, and their values read corrupt).
// When every one of them took the drop and proved it keeps none of the
// job's bytes (mayKeep false: dropAll), there is nothing to sweep; an
// answer not proved counts as keeping some, so one changed on the way
// cannot stop a sweep. The sweep runs as soon as a slot is free when every
// node took the drop; otherwise it waits until each serves and has
// applied the job's end (sweepReadyLocked).
func (c *Controller) sweepAfterDrop(job string, res *wire.DropResult, mayKeep bool, nodes []wire.MapNode) {
	covered := make(map[string]bool, len(nodes))
	addrs := make([]string, 0, len(nodes))
	for _, n := range nodes {
		covered[n.Addr] = true
		addrs = append(addrs, n.Addr)
	}
	dropped := res.Failed == 0
	c.mu.Lock()
	if e := c.ended.ids[job]; e != nil {
		for _, mn := range e.nodes {
			if !covered[mn.Addr] {
				covered[mn.Addr] = true
				addrs = append(addrs, mn.Addr)
				dropped = false
			}
		}
	}
	if dropped && !mayKeep {
		c.mu.Unlock()
		return
	}
	c.deferSweepLocked(job, &pendingSweep{addrs: addrs, dropped: dropped})
	c.mu.Unlock()
	c.sweepDeferred(time.Now())
}

// pendingSweep is a sweep waiting its turn (Controller.unswept): the
// nodes it covers (besides the final map's), whether every one took the
// job's drop order (so none takes its puts: no wait for their heartbeats),
// the attempts it has had and when it may run next.
type pendingSweep struct {
	addrs   []string
	dropped bool
	tries   int
	next    time.Time
}

// Bounds of a sweep's attempts: a failed one (a node busy dropping the job
// longer than sweepMaxBusy, an answer lost or unproved) is tried again
// after sweepRetry times 2^(tries-1), up to maxSweepTries in all.
const (
	sweepRetry    = 5 * time.Second
	maxSweepTries = 8
)

// deferSweepLocked keeps p for sweepDeferred, unless the job's final map
// is no longer kept (nothing reads by it) or p has had its tries.
func (c *Controller) deferSweepLocked(job string, p *pendingSweep) {
	if c.ended.ids[job] == nil || p.tries >= maxSweepTries {
		return
	}
	if p.tries > 0 {
		p.next = time.Now().Add(sweepRetry << (p.tries - 1))
	}
	c.unswept[job] = p
}

// sweepDeferred starts waiting sweeps that are due and whose nodes are
// ready, while a slot is free (maxSweeps: goroutines are started for
// running sweeps only, however many wait); one whose job's final map is
// no longer kept is forgotten. The controller's tick calls it, as do a
// job's end and a sweep's.
func (c *Controller) sweepDeferred(now time.Time) {
	if c.closing() {
		return // a new controller sweeps what it restores
	}
	type start struct {
		id string
		p  *pendingSweep
	}
	var starts []start
	c.mu.Lock()
	for id, p := range c.unswept {
		e := c.ended.ids[id]
		if e == nil {
			delete(c.unswept, id)
			continue
		}
		if now.Before(p.next) {
			continue
		}
		addrs, ok := p.addrs, true
		if !p.dropped {
			addrs, ok = c.sweepReadyLocked(e, p.addrs)
		}
		if !ok {
			continue
		}
		select {
		case c.sweeps <- struct{}{}:
		default:
			ok = false // every slot taken: the rest wait for one
		}
		if !ok {
			break
		}
		delete(c.unswept, id)
		p.addrs = addrs
		starts = append(starts, start{id, p})
	}
	c.mu.Unlock()
	for _, st := range starts {
		c.srv.goroutine(func() {
			ctx, cancel := c.closingContext()
			c.runSweep(ctx, st.id, st.p)
			cancel()
			<-c.sweeps
			c.sweepDeferred(time.Now())
		})
	}
}

// sweepReadyLocked returns the nodes a sweep of e's job covers, addrs and
// those of its final map, leaving out nodes the registry no longer has
// (their process left, with what it held), and whether each serves
// (registered, not dead, heard since a restore) and has applied the job's
// end (its job table at e.rev or later): then none takes the job's puts,
// and none may come back with manifests the sweep did not see.
func (c *Controller) sweepReadyLocked(e *endedJob, addrs []string) ([]string, bool) {
	seen := map[string]bool{}
	var out []string
	for _, a := range slices.Concat(addrs, nodeAddrs(e.nodes)) {
		if seen[a] {
			continue
		}
		seen[a] = true
		n := c.nodes[a]
		switch {
		case n == nil:
			continue
		case n.state == wire.NodeDead || n.unheard || n.since < e.rev:
			return nil, false
		}
		out = append(out, a)
	}
	return out, len(out) > 0
}

// nodeAddrs lists the addresses of ns.
func nodeAddrs(ns []wire.MapNode) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.Addr
	}
	return out
}

// runSweep runs sweep p of job within sweepTimeout (its caller holds a
// slot), logs and counts what it did, and keeps it for another attempt
// when it fails, then waiting for its nodes to be ready.
func (c *Controller) runSweep(ctx context.Context, job string, p *pendingSweep) {
	ctx, cancel := context.WithTimeout(ctx, sweepTimeout)
	defer cancel()
	r, err := c.sweepEnded(ctx, job, p.addrs)
	c.sweptVersions.Add(uint64(r.versions))
	c.sweptBytes.Add(uint64(r.bytes))
	switch {
	case err != nil && ctx.Err() != nil && c.closing():
		// Cut off by the controller's Close: not a failed try, and no
		// warning; a controller restored from the state sweeps again.
	case err != nil:
		p.tries++
		p.dropped = false
		c.mu.Lock()
		c.deferSweepLocked(job, p)
		_, again := c.unswept[job]
		c.mu.Unlock()
		what := "it is tried again later"
		if !again {
			what = "pocket rm --all with its credential frees them"
		}
		c.cfg.Logger.Warn("controller: sweeping an ended job's chunks that no manifest names failed; "+what,
			"job", job, "attempt", p.tries, "versions", r.versions, "bytes", r.bytes, "err", err)
	case r.versions > 0:
		c.cfg.Logger.Info("controller: swept an ended job's chunks that no manifest names",
			"job", job, "versions", r.versions, "chunks", r.chunks, "bytes", r.bytes)
	}
}

// sweepEnded drops the chunks of job's versions that no manifest on the
// nodes kept (every node of its map) names, on each of those nodes, and
// returns what went. Every answer it goes by is the node's, proved
// (dataclient.Client.VersionsAt).
func (c *Controller) sweepEnded(ctx context.Context, job string, kept []string) (sweepResult, error) {
	var res sweepResult
	key := token.OrderKey(c.cfg.Secret, []byte(job))
	cl := dataclient.New(dataclient.Options{ConnsPerNode: 1, DialTimeout: c.cfg.DropTimeout})
	defer cl.Close()
	named := map[uint64]bool{}
	held := make(map[string][]uint64, len(kept))
	incs := make(map[string]uint64, len(kept))
	for _, addr := range kept {
		inc, err := c.orderIncarnation(ctx, cl, addr)
		if err != nil {
			return res, fmt.Errorf("versions of job %s at %s: %w", job, addr, err)
		}
		incs[addr] = inc
		var ms []uint64
		err = patient(ctx, func() (err error) {
			ms, err = cl.VersionsAt(ctx, addr, job, key, inc, true)
			return err
		})
		if err != nil {
			return res, err
		}
		for _, v := range ms {
			named[v] = true
		}
		err = patient(ctx, func() (err error) {
			held[addr], err = cl.VersionsAt(ctx, addr, job, key, inc, false)
			return err
		})
		if err != nil {
			return res, err
		}
	}
	for _, addr := range kept {
		var unnamed []uint64
		for _, v := range held[addr] {
			if !named[v] {
				unnamed = append(unnamed, v)
			}
		}
		if len(unnamed) == 0 {
			continue
		}
		// A drop sent again after busy drops what the first left: the
		// versions it took are gone, and count nothing.
		err := patient(ctx, func() error {
			d, err := cl.DropVersionsAt(ctx, addr, job, key, incs[addr], unnamed)
			res.chunks += d.Values
			res.bytes += d.Freed
			return err
		})
		if err != nil {
			return res, err
		}
		res.versions += len(unnamed)
	}
	return res, nil
}

// patient runs call, again while it answers busy (the node's drop of the
// job not ended: dataplane's versionOrderAllowed), for sweepMaxBusy at
// most, pausing 10 ms and doubling up to 500 ms.
func patient(ctx context.Context, call func() error) error {
	deadline := time.Now().Add(sweepMaxBusy)
	for pause := 10 * time.Millisecond; ; pause = min(2*pause, 500*time.Millisecond) {
		err := call()
		if err == nil || !errors.Is(err, wire.ErrBusy) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
	}
}

// SweptVersions is the number of ended jobs' object versions whose chunks
// no manifest named that the controller had its nodes drop (sweep.go),
// and SweptBytes their bytes.
func (c *Controller) SweptVersions() uint64 { return c.sweptVersions.Load() }

// SweptBytes: see SweptVersions.
func (c *Controller) SweptBytes() uint64 { return c.sweptBytes.Load() }
