package controller

import (
	"context"
	"errors"
	"fmt"
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
// has dropped its data (so none takes its puts any more: dataplane's
// versionOrderAllowed) and some keep persisted values, the controller
// asks each for the versions its manifests name and the versions it holds
// chunks of (wire.OpVersions; each answer proved by the node, since the
// data plane is plain TCP and the sweep drops by what they say), and
// orders each to drop the versions no manifest on any of them names
// (wire.OpDropVersions). Those are the
// job's only nodes that may hold a manifest: a node the job lost drops
// what it holds of the job when it comes back, so chunks its manifests
// named can be read through no map. A job with a dead node in its map, or
// a node that did not drop, is swept only once every node of its final
// map serves and has applied the job's end (sweepDeferred): the dead node
// may come back with manifests. A sweep that failed is not retried, nor
// one a controller's restart cut off; `pocket rm --all` still frees what
// is left.

// sweepMaxBusy bounds how long a sweep waits out a node that answers busy
// (the job's data still being dropped there, by its revocation): patient.
const sweepMaxBusy = 5 * time.Second

// maxSweeps bounds the sweeps that run at once (each with a connection
// to each node of the job's map); the others wait their turn.
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

// sweepAfterDrop sweeps job's unnamed chunks (sweepEnded) on the nodes of
// its map after its drop, when res says every one dropped its data and
// kept that some keep persisted values, and logs what it did. Every node
// is asked, not only those that said they keep values: a drop's answer
// changed on the way (the data plane is plain TCP) must not hide a node's
// manifests from the sweep. When a node did not drop (dead, or failing),
// the sweep waits until every node of the job's final map serves and has
// applied the job's end (sweepDeferred).
func (c *Controller) sweepAfterDrop(ctx context.Context, job string, res *wire.DropResult, kept []string, nodes []wire.MapNode) {
	if res.Failed > 0 {
		c.mu.Lock()
		if c.ended.ids[job] != nil {
			c.unswept[job] = struct{}{}
		}
		c.mu.Unlock()
		return
	}
	if len(kept) == 0 {
		return
	}
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.Addr
	}
	c.runSweep(ctx, job, addrs)
}

// sweepDeferred starts the sweeps sweepAfterDrop left for later whose
// job's final map now has every node serving and past the job's end
// (ready); a job whose final map is no longer kept is not swept.
func (c *Controller) sweepDeferred() {
	c.mu.Lock()
	var due map[string][]string
	for id := range c.unswept {
		e := c.ended.ids[id]
		if e == nil {
			delete(c.unswept, id)
			continue
		}
		if addrs, ok := c.sweepReadyLocked(e); ok {
			delete(c.unswept, id)
			if due == nil {
				due = map[string][]string{}
			}
			due[id] = addrs
		}
	}
	c.mu.Unlock()
	for id, addrs := range due {
		c.srv.goroutine(func() {
			ctx, cancel := c.closingContext()
			defer cancel()
			c.runSweep(ctx, id, addrs)
		})
	}
}

// sweepReadyLocked returns the nodes of e's final map, and whether each
// serves (registered, not dead, heard since its restore) and has applied
// the job's end (its job table at e.rev or later): then none takes the
// job's puts, and none may come back with manifests the sweep did not see.
func (c *Controller) sweepReadyLocked(e *endedJob) ([]string, bool) {
	addrs := make([]string, 0, len(e.nodes))
	for _, mn := range e.nodes {
		n := c.nodes[mn.Addr]
		if n == nil || n.state == wire.NodeDead || n.unheard || n.since < e.rev {
			return nil, false
		}
		addrs = append(addrs, mn.Addr)
	}
	return addrs, len(addrs) > 0
}

// runSweep runs one sweep of job on the nodes kept, within maxSweeps and
// sweepTimeout, and logs and counts what it did.
func (c *Controller) runSweep(ctx context.Context, job string, kept []string) {
	select {
	case c.sweeps <- struct{}{}:
		defer func() { <-c.sweeps }()
	case <-ctx.Done():
		return
	}
	ctx, cancel := context.WithTimeout(ctx, sweepTimeout)
	defer cancel()
	r, err := c.sweepEnded(ctx, job, kept)
	c.sweptVersions.Add(uint64(r.versions))
	c.sweptBytes.Add(uint64(r.bytes))
	switch {
	case err != nil:
		c.cfg.Logger.Warn("controller: sweeping an ended job's chunks that no manifest names failed; pocket rm --all with its credential frees them",
			"job", job, "versions", r.versions, "bytes", r.bytes, "err", err)
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
