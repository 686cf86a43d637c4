package dataplane

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// Guard authorizes requests. A node started without a controller has no
// guard and serves anyone (the standalone mode of `pocket node`).
type Guard interface {
	// CheckJob returns nil when token grants access to job, else an error
	// matching wire.ErrBadToken. Called on every request, so it must be cheap.
	CheckJob(job, token []byte) error
	// CheckAdmin returns nil when token is the controller's own for job
	// (drop-job orders).
	CheckAdmin(job, token []byte) error
}

// NodeConfig configures a storage node.
type NodeConfig struct {
	Listen string       // host:port
	Net    netio.Config // event loops, limits, busy polling
	Limits wire.Limits  // zero value: wire.DefaultLimits
	DRAM   Tier         // may be nil when NVMe is set
	NVMe   Tier         // optional
	Guard  Guard        // nil: no tokens checked
	// Workers bounds the goroutines that run blocking tier calls (NVMe);
	// it is also the deepest device queue the node can build. Default 64.
	Workers int
	Logger  *slog.Logger
}

// Node is a storage node: the event loops, the tiers, and the job table.
type Node struct {
	cfg    NodeConfig
	lim    wire.Limits
	srv    *netio.Server
	log    *slog.Logger
	work   chan func()
	wg     sync.WaitGroup
	jobs   jobTable
	vers   *versionTable // object versions and their leases (versions.go)
	stats  nodeStats
	closed atomic.Bool
	drain  atomic.Bool
	// inflight counts blocking tier calls queued or running on workers.
	inflight atomic.Int64
	// pf is the DRAM tier when it can prefetch, else nil; batches are the
	// loops' prefetch scratch, by loop index, each made and used only by
	// its loop (see prefetch.go).
	pf      prefetcher
	batches [maxStatLoops]*prefetchBatch
}

// nodeStats are the request counters, one set per event loop so that two
// loops never write the same cache line on every request; Stats adds them.
type nodeStats struct {
	loops [maxStatLoops]loopStats
}

const maxStatLoops = 64

type loopStats struct {
	requests, errors  atomic.Uint64
	bytesIn, bytesOut atomic.Uint64
	_                 [32]byte // one cache line each
}

// of returns the counters of c's loop.
func (s *nodeStats) of(c *netio.Conn) *loopStats {
	return &s.loops[c.Loop().Index()%maxStatLoops]
}

// NewNode starts a node listening on cfg.Listen.
func NewNode(cfg NodeConfig) (*Node, error) {
	if cfg.DRAM == nil && cfg.NVMe == nil {
		return nil, errors.New("dataplane: a node needs at least one tier")
	}
	n := &Node{cfg: cfg, lim: cfg.Limits, log: cfg.Logger}
	if n.lim.MaxMeta == 0 {
		n.lim = wire.DefaultLimits()
	}
	if n.log == nil {
		n.log = slog.Default()
	}
	if cfg.Net.MaxInbound == 0 {
		cfg.Net.MaxInbound = wire.HeaderLen + n.lim.MaxMeta + smallCopy
	}
	n.pf, _ = cfg.DRAM.(prefetcher)
	n.jobs.init()
	n.vers = newVersionTable()
	n.startWorkers(cfg.Workers)
	srv, err := netio.Listen(cfg.Listen, cfg.Net, n)
	if err != nil {
		n.stopWorkers()
		return nil, fmt.Errorf("dataplane: listen %s: %w", cfg.Listen, err)
	}
	n.srv = srv
	return n, nil
}

func (n *Node) startWorkers(count int) {
	if count <= 0 {
		count = 64
	}
	n.work = make(chan func(), count*4)
	for i := 0; i < count; i++ {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			for f := range n.work {
				f()
			}
		}()
	}
}

func (n *Node) stopWorkers() {
	close(n.work)
	n.wg.Wait()
}

// Addr is the address the node listens on.
func (n *Node) Addr() net.Addr { return n.srv.Addr() }

// Close stops the event loops and the workers. The tiers stay open: their
// owner closes them.
func (n *Node) Close() error {
	if n.closed.Swap(true) {
		return nil
	}
	err := n.srv.Close()
	n.stopWorkers()
	n.vers.close()
	return err
}

// SetDraining makes the node refuse new puts with wire.CodeDraining while
// still serving reads and deletes.
func (n *Node) SetDraining(on bool) { n.drain.Store(on) }

// SetEpoch records the current placement-map epoch of a job; requests
// routed with an older epoch are refused with wire.CodeStaleEpoch.
func (n *Node) SetEpoch(job string, epoch uint64) { n.jobs.setEpoch(job, epoch) }

// Tiers returns the node's tiers, DRAM first.
func (n *Node) Tiers() []Tier {
	var ts []Tier
	for _, t := range []Tier{n.cfg.DRAM, n.cfg.NVMe} {
		if t != nil {
			ts = append(ts, t)
		}
	}
	return ts
}

// Stats are a node's request counters.
type Stats struct {
	Requests, Errors, BytesIn, BytesOut uint64
	Net                                 netio.Stats
}

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	st := Stats{Net: n.srv.Stats()}
	for i := range n.stats.loops {
		l := &n.stats.loops[i]
		st.Requests += l.requests.Load()
		st.Errors += l.errors.Load()
		st.BytesIn += l.bytesIn.Load()
		st.BytesOut += l.bytesOut.Load()
	}
	return st
}

// DropJob deletes a job's values from every tier (keeping persistent ones
// when asked) and forgets its epoch; it returns values' bytes freed.
func (n *Node) DropJob(job []byte, keepPersistent bool) int64 {
	var freed int64
	for _, t := range n.Tiers() {
		freed += t.DropJob(job, keepPersistent)
	}
	n.jobs.forget(string(job))
	n.vers.dropJob(job)
	return freed
}

// jobTable holds per-job epochs. Reads are on every request, from every
// loop: an atomic load of an immutable map, looked up by the request's job
// bytes (which does not allocate); writers copy the map under mu.
type jobTable struct {
	mu     sync.Mutex
	epochs atomic.Pointer[map[string]uint64]
}

func (j *jobTable) init() {
	m := map[string]uint64{}
	j.epochs.Store(&m)
}

// update replaces the map with a copy changed by f.
func (j *jobTable) update(f func(m map[string]uint64)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	old := *j.epochs.Load()
	m := make(map[string]uint64, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	f(m)
	j.epochs.Store(&m)
}

func (j *jobTable) setEpoch(job string, e uint64) {
	if cur, ok := (*j.epochs.Load())[job]; ok && cur >= e {
		return
	}
	j.update(func(m map[string]uint64) {
		if e > m[job] {
			m[job] = e
		}
	})
}

func (j *jobTable) forget(job string) {
	if _, ok := (*j.epochs.Load())[job]; !ok {
		return
	}
	j.update(func(m map[string]uint64) { delete(m, job) })
}

// check refuses an epoch older than the job's current one. A newer epoch
// is learned: the client has already seen the controller's newer map.
func (j *jobTable) check(job []byte, e uint64) error {
	if e == 0 {
		return nil
	}
	cur, ok := (*j.epochs.Load())[string(job)]
	if e < cur {
		return &wire.Error{Code: wire.CodeStaleEpoch, Msg: "placement map is stale; fetch the job's map again", Epoch: cur}
	}
	if !ok || e > cur {
		j.setEpoch(string(job), e)
	}
	return nil
}
