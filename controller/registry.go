package controller

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/wire"
)

// Tier kinds, the dataplane.Kind numbers (not imported, to keep the control
// plane free of the data plane's dependencies).
const (
	kindDRAM uint8 = 1
	kindNVMe uint8 = 2
)

func kindName(k uint8) string {
	switch k {
	case kindDRAM:
		return "dram"
	case kindNVMe:
		return "nvme"
	}
	return "kind " + strconv.Itoa(int(k))
}

// Controller holds the node and job registries and serves the control
// protocol. Its methods are safe for concurrent use; the exported registry
// methods are what the network handlers call, and may be called in-process.
type Controller struct {
	cfg Config

	mu    sync.Mutex // guards nodes, jobs, seq, gone
	nodes map[string]*node
	jobs  map[string]*job
	seq   uint64
	// gone holds the nodes that finished a drain and left, with the time
	// they left: one still running (not stopped by an orchestrator) is
	// refused when it registers again, so a drained node stays out.
	gone        map[string]time.Time
	retireHooks []RetireHook

	auto atomic.Pointer[Autoscaler]

	srv server
}

// node is a registered storage node.
type node struct {
	addr      string
	state     wire.NodeState
	tiers     []wire.TierStat
	cores     uint32
	rx, tx    float64
	cpu       float64
	metrics   []wire.Metric
	lastSeen  time.Time
	deadSince time.Time
	hist      history
	drain     *drainState // set while draining
}

// job is a registered job.
type job struct {
	id, name   string
	hints      wire.JobHints
	tier       uint8
	epoch      uint64
	nodes      []wire.MapNode // State is filled from the registry when read
	allocMbps  float64
	allocBytes int64
	created    time.Time
	token      []byte
}

// New returns a controller with empty registries. It starts the dead-node
// sweeper; Close stops it.
func New(cfg Config) (*Controller, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ctl := &Controller{cfg: c, nodes: map[string]*node{}, jobs: map[string]*job{}, seq: c.FirstJobSeq, gone: map[string]time.Time{}}
	if ctl.seq == 0 {
		ctl.seq = randomSeq()
	}
	ctl.srv.init()
	ctl.srv.goroutine(ctl.sweepLoop)
	return ctl, nil
}

// randomSeq returns a start for job numbers in [1, 1e9).
func randomSeq() uint64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 1
	}
	return 1 + binary.LittleEndian.Uint64(b[:])%999_999_999
}

// ---- nodes ----

// RegisterNode adds or refreshes a node. The proof must be
// token.SignNode(secret, addr).
func (c *Controller) RegisterNode(reg *wire.NodeRegister) (*wire.NodeAck, error) {
	if !token.VerifyNode(c.cfg.Secret, reg.Addr, reg.Proof) {
		return nil, wire.Errorf(wire.CodeBadToken, "node %s: registration proof does not match the cluster secret", reg.Addr)
	}
	if _, _, err := net.SplitHostPort(reg.Addr); err != nil {
		return nil, wire.Errorf(wire.CodeBadKey, "node address %q: %v", reg.Addr, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.goneLocked(reg.Addr); err != nil {
		return nil, err
	}
	n, ok := c.nodes[reg.Addr]
	if !ok {
		n = &node{addr: reg.Addr, state: wire.NodeActive}
		c.nodes[reg.Addr] = n
		c.cfg.Logf("controller: node %s registered (%s)", reg.Addr, tierSummary(reg.Tiers))
	} else if n.state == wire.NodeDead {
		c.setStateLocked(n, wire.NodeActive, "registered again")
	}
	n.tiers = append([]wire.TierStat(nil), reg.Tiers...)
	n.cores = reg.Cores
	n.lastSeen = time.Now()
	return c.ackLocked(n), nil
}

// Heartbeat records a node's report. An unknown node gets Known=false and
// must register again.
func (c *Controller) Heartbeat(hb *wire.Heartbeat) (*wire.NodeAck, error) {
	if !token.VerifyNode(c.cfg.Secret, hb.Addr, hb.Proof) {
		return nil, wire.Errorf(wire.CodeBadToken, "node %s: heartbeat proof does not match the cluster secret", hb.Addr)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.nodes[hb.Addr]
	if !ok {
		return &wire.NodeAck{Known: false, Heartbeat: c.cfg.HeartbeatInterval}, nil
	}
	if n.state == wire.NodeDead {
		c.setStateLocked(n, wire.NodeActive, "heartbeat resumed")
	}
	if len(hb.Tiers) > 0 {
		n.tiers = append(n.tiers[:0], hb.Tiers...)
	}
	n.rx, n.tx, n.cpu = hb.RxMbps, hb.TxMbps, hb.CPUPercent
	n.metrics = hb.Metrics
	n.lastSeen = time.Now()
	c.recordLocked(n, n.lastSeen)
	c.drainReportLocked(n, hb)
	return c.ackLocked(n), nil
}

// ackLocked builds a node's ack: its state and its jobs' epochs, and for
// a draining node the jobs' tokens, with which it moves their data.
func (c *Controller) ackLocked(n *node) *wire.NodeAck {
	ack := &wire.NodeAck{Known: true, State: n.state, Heartbeat: c.cfg.HeartbeatInterval}
	for _, j := range c.jobs {
		if j.has(n.addr) {
			je := wire.JobEpoch{Job: j.id, Epoch: j.epoch}
			if n.state == wire.NodeDraining {
				je.Token = j.token
			}
			ack.Jobs = append(ack.Jobs, je)
		}
	}
	sort.Slice(ack.Jobs, func(a, b int) bool { return ack.Jobs[a].Job < ack.Jobs[b].Job })
	return ack
}

// setStateLocked changes a node's state and bumps the epoch of every job
// that has the node in its map.
func (c *Controller) setStateLocked(n *node, s wire.NodeState, why string) {
	if n.state == s {
		return
	}
	c.cfg.Logf("controller: node %s %s -> %s (%s)", n.addr, n.state, s, why)
	n.state = s
	if s == wire.NodeDead {
		n.deadSince = time.Now()
	}
	for _, j := range c.jobs {
		if j.has(n.addr) {
			j.epoch++
		}
	}
}

// SetNodeState sets a registered node's state. It returns CodeNotFound
// for an unknown node. Draining goes through Drain, which also moves the
// node's data and retires it.
func (c *Controller) SetNodeState(addr string, s wire.NodeState) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.nodes[addr]
	if !ok {
		return wire.Errorf(wire.CodeNotFound, "node %s is not registered", addr)
	}
	c.setStateLocked(n, s, "set by request")
	return nil
}

// sweepLoop marks silent nodes dead and forgets long-dead ones until the
// controller closes.
func (c *Controller) sweepLoop() {
	t := time.NewTicker(min(c.cfg.HeartbeatInterval, c.cfg.DeadAfter/4))
	defer t.Stop()
	for {
		select {
		case <-c.srv.done:
			return
		case now := <-t.C:
			c.sweep(now)
			c.drainTick(now)
		}
	}
}

func (c *Controller) sweep(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for addr, n := range c.nodes {
		switch {
		case n.state != wire.NodeDead && now.Sub(n.lastSeen) > c.cfg.DeadAfter:
			c.setStateLocked(n, wire.NodeDead, fmt.Sprintf("no heartbeat for %v", now.Sub(n.lastSeen).Round(time.Millisecond)))
		case n.state == wire.NodeDead && now.Sub(n.deadSince) > c.cfg.ForgetAfter && !c.inAnyJobLocked(addr):
			c.cfg.Logf("controller: node %s forgotten", addr)
			delete(c.nodes, addr)
		}
	}
	for addr, t := range c.gone {
		if now.Sub(t) > c.cfg.ForgetAfter {
			delete(c.gone, addr)
		}
	}
}

func (c *Controller) inAnyJobLocked(addr string) bool {
	for _, j := range c.jobs {
		if j.has(addr) {
			return true
		}
	}
	return false
}

func (j *job) has(addr string) bool {
	for i := range j.nodes {
		if j.nodes[i].Addr == addr {
			return true
		}
	}
	return false
}

func tierSummary(ts []wire.TierStat) string {
	s := ""
	for i, t := range ts {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s %d B %.0f Mb/s", kindName(t.Kind), t.CapacityBytes, t.Mbps)
	}
	return s
}

// ---- jobs ----

// maxNameLen leaves room in a job id for "-" and 20 digits.
const maxNameLen = wire.DefaultMaxJobLen - 21

// checkName accepts 1..maxNameLen bytes of letters, digits, '.', '_' and
// '-': names become path-like prefixes and log fields, so nothing else.
func checkName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return wire.Errorf(wire.CodeBadKey, "job name must have 1 to %d bytes", maxNameLen)
	}
	for i := 0; i < len(name); i++ {
		ch := name[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '.' || ch == '_' || ch == '-') {
			return wire.Errorf(wire.CodeBadKey, "job name %q: only letters, digits, '.', '_' and '-' are allowed", name)
		}
	}
	return nil
}

// RegisterJob sizes and places a new job and returns its map and token.
func (c *Controller) RegisterJob(name string, h wire.JobHints) (*wire.PlacementMap, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if a := c.scaler(); a != nil {
		a.reserve(name, h)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	kind := c.tierForLocked(h.LatencySensitive)
	cands := c.candidatesLocked(kind)
	if len(cands) == 0 {
		return nil, wire.Errorf(wire.CodeUnavailable, "no active node with a %s tier", kindName(kind))
	}
	p := c.cfg.Policy.size(cands, h)
	id := name + "-" + strconv.FormatUint(c.seq, 10)
	c.seq++
	j := &job{id: id, name: name, hints: h, tier: kind, epoch: 1, nodes: p.nodes,
		allocMbps: p.mbps, allocBytes: p.bytes, created: time.Now(), token: token.Sign(c.cfg.Secret, []byte(id))}
	c.jobs[id] = j
	c.cfg.Logf("controller: job %s on %d %s node(s) (%.0f Mb/s, %d B, %s-bound)", id, len(p.nodes),
		kindName(kind), p.mbps, p.bytes, map[bool]string{true: "throughput", false: "capacity"}[p.throughput])
	return c.mapLocked(j), nil
}

// tierForLocked picks the job's tier (step 1 of the policy).
func (c *Controller) tierForLocked(latencySensitive bool) uint8 {
	if latencySensitive {
		return kindDRAM
	}
	for _, n := range c.nodes {
		if n.state == wire.NodeActive && n.tier(kindNVMe) != nil {
			return kindNVMe
		}
	}
	return kindDRAM
}

func (n *node) tier(kind uint8) *wire.TierStat {
	for i := range n.tiers {
		if n.tiers[i].Kind == kind {
			return &n.tiers[i]
		}
	}
	return nil
}

// candidatesLocked lists the active nodes with a tier of kind and their
// spare resources (step 3 of the policy).
func (c *Controller) candidatesLocked(kind uint8) []candidate {
	allocMbps, allocBytes := c.allocationsLocked()
	var out []candidate
	for addr, n := range c.nodes {
		t := n.tier(kind)
		if n.state != wire.NodeActive || t == nil {
			continue
		}
		mbps := t.Mbps
		if mbps <= 0 {
			mbps = c.cfg.Policy.NodeMbps
		}
		busy := max(n.rx, n.tx, allocMbps[addr])
		used := max(t.UsedBytes, allocBytes[addr])
		out = append(out, candidate{addr: addr, spareMbps: max(0, mbps-busy), spareBytes: max(0, t.CapacityBytes-used)})
	}
	return out
}

// allocationsLocked sums the jobs' allotments per node, by weight.
func (c *Controller) allocationsLocked() (map[string]float64, map[string]int64) {
	mbps, bytes := map[string]float64{}, map[string]int64{}
	for _, j := range c.jobs {
		for _, n := range j.nodes {
			mbps[n.Addr] += j.allocMbps * n.Weight
			bytes[n.Addr] += int64(float64(j.allocBytes) * n.Weight)
		}
	}
	return mbps, bytes
}

// mapLocked copies a job's map with each node's current state.
func (c *Controller) mapLocked(j *job) *wire.PlacementMap {
	m := &wire.PlacementMap{Job: j.id, Tier: j.tier, Epoch: j.epoch, Token: j.token,
		Nodes: append([]wire.MapNode(nil), j.nodes...)}
	for i := range m.Nodes {
		m.Nodes[i].State = wire.NodeDead
		if n, ok := c.nodes[m.Nodes[i].Addr]; ok {
			m.Nodes[i].State = n.state
		}
	}
	return m
}

// lookup returns a job after checking its token.
func (c *Controller) lookupLocked(id string, tok []byte) (*job, error) {
	j, ok := c.jobs[id]
	if !ok {
		return nil, wire.Errorf(wire.CodeUnknownJob, "job %s is not registered", id)
	}
	if !token.Verify(c.cfg.Secret, []byte(id), tok) {
		return nil, wire.Errorf(wire.CodeBadToken, "token does not grant job %s", id)
	}
	return j, nil
}

// GetMap returns a job's current map; tok must be the job's token.
func (c *Controller) GetMap(id string, tok []byte) (*wire.PlacementMap, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	j, err := c.lookupLocked(id, tok)
	if err != nil {
		return nil, err
	}
	return c.mapLocked(j), nil
}

// DeregisterJob forgets a job and has each of its live nodes drop the
// job's values (except persistent ones). tok must be the job's token. The
// job is forgotten even when some nodes cannot be reached; the result
// counts them in Failed and names them in Message.
func (c *Controller) DeregisterJob(ctx context.Context, id string, tok []byte) (*wire.DropResult, error) {
	c.mu.Lock()
	j, err := c.lookupLocked(id, tok)
	if err != nil {
		c.mu.Unlock()
		return nil, err
	}
	delete(c.jobs, id)
	targets := c.mapLocked(j).Nodes
	c.mu.Unlock()
	res := c.dropAll(ctx, id, targets)
	c.cfg.Logf("controller: job %s deregistered: %d node(s) dropped %d value(s), %d B; %d failed",
		id, res.Nodes, res.Values, res.Bytes, res.Failed)
	return res, nil
}

// Status lists the registered nodes and jobs, sorted by address and id.
func (c *Controller) Status() *wire.ClusterStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	st := &wire.ClusterStatus{}
	for _, n := range c.nodes {
		ns := wire.NodeStatus{Addr: n.addr, State: n.state, Tiers: append([]wire.TierStat(nil), n.tiers...),
			RxMbps: n.rx, TxMbps: n.tx, CPUPercent: n.cpu, Cores: n.cores, LastSeen: now.Sub(n.lastSeen),
			Metrics: append([]wire.Metric(nil), n.metrics...)}
		for _, j := range c.jobs {
			if j.has(n.addr) {
				ns.Jobs++
			}
		}
		st.Nodes = append(st.Nodes, ns)
	}
	for _, j := range c.jobs {
		m := c.mapLocked(j)
		st.Jobs = append(st.Jobs, wire.JobStatus{Job: j.id, Name: j.name, Tier: j.tier, Epoch: j.epoch,
			Nodes: m.Nodes, Hints: j.hints, AllocMbps: j.allocMbps, AllocBytes: j.allocBytes, Age: now.Sub(j.created)})
	}
	sort.Slice(st.Nodes, func(a, b int) bool { return st.Nodes[a].Addr < st.Nodes[b].Addr })
	sort.Slice(st.Jobs, func(a, b int) bool { return st.Jobs[a].Job < st.Jobs[b].Job })
	return st
}
