package controller

import (
	"sort"
	"strings"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// statusBytes bounds the estimated encoded size of a status or job-list
// reply, well under the control frame limit (wire.DefaultControlMaxMeta,
// 4 MiB) whatever the cluster holds: the nodes get statusBytes/2, the jobs
// the rest (at least one job, whose size the wire limits bound).
const statusBytes = 3 << 20

// Status lists the registered nodes (sorted by address, as many as fit its
// share of the reply), the number of jobs and the first Config.StatusJobs
// jobs in registration order; NextJob continues the listing (ListJobs).
// It carries the controller's prices (Config.Prices), which `pocket
// status` prices the jobs at.
func (c *Controller) Status() *wire.ClusterStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	st := &wire.ClusterStatus{NodeCount: uint32(len(c.nodes)), JobCount: uint64(c.order.len())}
	addrs := make([]string, 0, len(c.nodes))
	for addr := range c.nodes {
		addrs = append(addrs, addr)
	}
	sort.Strings(addrs)
	size := 0
	for _, addr := range addrs {
		ns := c.nodeStatusLocked(c.nodes[addr], now)
		if size += nodeStatusSize(&ns); size > statusBytes/2 {
			break
		}
		st.Nodes = append(st.Nodes, ns)
	}
	c.listJobsLocked(st, 0, c.cfg.StatusJobs, statusBytes-size, now)
	if a := c.scaler(); a != nil {
		st.AutoscaleMaxNodes = uint32(a.cfg.MaxNodes)
	}
	p := c.cfg.Prices
	st.Prices = &wire.PriceTable{DRAMGiBHour: p.DRAMGiBHour, NVMeGiBHour: p.NVMeGiBHour, GbpsHour: p.GbpsHour}
	st.Clients = c.clientHoldsLocked(wire.MaxStatusClients)
	st.QuotaBytes, st.QuotaMbps = max(c.cfg.MaxBytesPerClient, 0), max(c.cfg.MaxMbpsPerClient, 0)
	st.Retired = c.retiredLocked(wire.MaxStatusRetired)
	return st
}

// retiredLocked lists at most k of the drains that ended lately, the
// latest first, each with how its node left (drainEndedLocked), within
// ForgetAfter.
func (c *Controller) retiredLocked(k int) []wire.RetiredNode {
	var out []wire.RetiredNode
	for i := len(c.drainsEnded) - 1; i >= 0 && len(out) < k; i-- {
		if r := c.drainsEnded[i]; time.Since(r.At) <= c.cfg.ForgetAfter {
			out = append(out, r)
		}
	}
	return out
}

// holderName is clientName(key), but "operator ADDR" over TLS for an
// address: there every client certificate names a tenant, so an address
// is an operator's, whose registrations have no quota (a new user's trial
// read them as a client far over its quota).
func (c *Controller) holderName(key string) string {
	if c.cfg.TLS != nil && !strings.HasPrefix(key, tenantKey) {
		return "operator " + key
	}
	return clientName(key)
}

// clientHoldsLocked is what the clients holding live jobs are allotted,
// and what their ended jobs' persisted values hold, the most first (bytes
// allotted and persisted, then Mb/s, then name), at most n of them: an
// operator sees each tenant's use against the quotas (a new user's trial
// added it up from the job list by hand).
func (c *Controller) clientHoldsLocked(n int) []wire.ClientHold {
	kept := c.persistedByClientLocked()
	stored := c.storedByClientLocked(kept) // not summing the persisted values twice
	hold := func(key string, h wire.ClientHold) wire.ClientHold {
		h.Client, h.PersistedBytes, h.StoredBytes = c.holderName(key), kept[key], stored[key]
		h.OverQuota = c.cfg.MaxBytesPerClient > 0 && stored[key] > c.cfg.MaxBytesPerClient && !c.operatorKey(key)
		return h
	}
	var out []wire.ClientHold
	for key, cl := range c.clients {
		if cl.jobs > 0 || kept[key] > 0 {
			out = append(out, hold(key, wire.ClientHold{Jobs: uint32(cl.jobs), AllocBytes: cl.bytes, AllocMbps: cl.mbps}))
		}
		delete(kept, key)
	}
	for key, b := range kept {
		if b > 0 {
			out = append(out, hold(key, wire.ClientHold{}))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if x, y := a.AllocBytes+a.PersistedBytes, b.AllocBytes+b.PersistedBytes; x != y {
			return x > y
		}
		if a.AllocMbps != b.AllocMbps {
			return a.AllocMbps > b.AllocMbps
		}
		return a.Client < b.Client
	})
	return out[:min(len(out), n)]
}

// ListJobs returns up to limit jobs registered after the cursor `after`
// (a ClusterStatus.NextJob; 0: from the first), in registration order,
// with the job count and the cursor for the next page. limit is capped at
// Config.ListJobsPage (0: that many); the reply is bounded in bytes too.
func (c *Controller) ListJobs(after uint64, limit int) *wire.ClusterStatus {
	if limit <= 0 || limit > c.cfg.ListJobsPage {
		limit = c.cfg.ListJobsPage
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st := &wire.ClusterStatus{NodeCount: uint32(len(c.nodes)), JobCount: uint64(c.order.len())}
	c.listJobsLocked(st, after, limit, statusBytes, time.Now())
	return st
}

// listJobsLocked appends the jobs after the cursor to st, within limit and
// budget bytes, and sets the cursor for the rest.
func (c *Controller) listJobsLocked(st *wire.ClusterStatus, after uint64, limit, budget int, now time.Time) {
	last := after
	for i := c.order.after(after); i < len(c.order.jobs) && len(st.Jobs) < limit; i++ {
		j := c.order.jobs[i]
		if j == nil {
			continue
		}
		u := c.jobUtilLocked(j, drainSafeSmooth)
		js := wire.JobStatus{Job: j.id, Name: j.name, Tier: j.tier, Epoch: j.epoch, Nodes: c.mapLocked(j).Nodes,
			Hints: j.hints, AllocMbps: j.allocMbps, AllocBytes: j.allocBytes, Age: now.Sub(j.created),
			UsedMbps: jobStatusMbps(u.Mbps), UsedBytes: jobStatusBytes(c.jobHeldBytesLocked(j)), Tenant: j.tenant, Settling: u.Settling}
		if len(js.Tenant) > wire.MaxTenantLen {
			js.Tenant = TenantLabel(js.Tenant) // a stored record's, not TenantOf's
		}
		if budget -= jobStatusSize(&js); budget < 0 && len(st.Jobs) > 0 {
			break
		}
		st.Jobs = append(st.Jobs, js)
		last = j.gen
	}
	if c.order.liveAfter(last) {
		st.NextJob = last
	}
}

// jobHeldBytesLocked is job j's own bytes as a status reply gives them:
// on the nodes of its map that hold them, active or draining. A node
// drained from the cluster keeps the values it has not moved yet, so
// they count there until moved; JobUtil, which the policies read, counts
// active nodes only, and the status showed only what had moved during a
// drain. A dead node's values are gone. Each node's figure is its latest
// report: while values move between two nodes, one moved between their
// reports counts on both or on neither (pocket status marks such a
// job's figure as moving).
func (c *Controller) jobHeldBytesLocked(j *job) float64 {
	var b float64
	for _, mn := range j.nodes {
		n, ok := c.nodes[mn.Addr]
		if !ok || (n.state != wire.NodeActive && n.state != wire.NodeDraining) {
			continue
		}
		if t := n.tier(j.tier); t != nil {
			b += c.jobBytesLocked(j, n, mn, float64(t.UsedBytes))
		}
	}
	return b
}

// jobStatusMbps and jobStatusBytes are a job's own figures (JobUtil) as a status
// reply carries them: within a job's bounds (wire.MaxJobMbps,
// wire.MaxJobBytes), converted without overflow, so that a node's figures
// never make the reply one the client refuses (a sum over more nodes than
// a map holds was converted to a negative int64).
func jobStatusMbps(f float64) float64 { return wire.ClampMbps(f, wire.MaxJobMbps) }
func jobStatusBytes(f float64) int64  { return wire.ClampBytes(wire.SatBytes(f), wire.MaxJobBytes) }

// statusTiers is a copy of a node's tiers as a status reply carries them:
// each figure within one node's bounds (wire.MaxNodeBytes, MaxNodeMbps),
// which the client's decoder checks. A node heard through the decoder
// never has others; an in-process caller's may.
func statusTiers(ts []wire.TierStat) []wire.TierStat {
	out := append([]wire.TierStat(nil), ts...)
	for i := range out {
		t := &out[i]
		t.CapacityBytes = wire.ClampBytes(t.CapacityBytes, wire.MaxNodeBytes)
		t.UsedBytes = wire.ClampBytes(t.UsedBytes, wire.MaxNodeBytes)
		if t.Mbps = wire.ClampMbps(t.Mbps, wire.MaxNodeMbps); t.Mbps < wire.MinTierMbps {
			t.Mbps = 0 // not measured
		}
	}
	return out
}

func (c *Controller) nodeStatusLocked(n *node, now time.Time) wire.NodeStatus {
	ns := wire.NodeStatus{Addr: n.addr, State: n.state, Tiers: statusTiers(n.tiers),
		RxMbps: n.rx, TxMbps: n.tx, CPUPercent: n.cpu, Cores: n.cores, LastSeen: now.Sub(n.lastSeen),
		Metrics: append([]wire.Metric(nil), n.metrics...)}
	if p := &n.persisted; p.keeps() && len(ns.Metrics)+2 <= wire.MaxMetrics {
		ns.Metrics = append(ns.Metrics, wire.Metric{Name: wire.MetricPersistedJobs, Value: float64(p.jobs)},
			wire.Metric{Name: wire.MetricPersistedBytes, Value: float64(p.bytes)})
	}
	// The jobs' ids, so an operator knows whose credential reads or
	// deletes the values (the heartbeat names the largest).
	ns.Persisted = append([]wire.HeldJob(nil), n.persisted.largest...)
	if l := c.loads[n.addr]; l != nil {
		ns.Jobs = uint32(len(l.jobs))
	}
	if n.unheard {
		// Read from the state, not heard from since this controller
		// started: its lastSeen is a grace deadline, not a heartbeat.
		ns.Restored, ns.LastSeen = true, 0
	}
	return ns
}

// restoredUnheard counts the active nodes read from the durable state and
// not heard from since this controller started (wire.NodeStatus.Restored).
func (c *Controller) restoredUnheard() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := 0
	for _, n := range c.nodes {
		if n.unheard && n.state == wire.NodeActive {
			k++
		}
	}
	return k
}

// Size estimates, generous: flatbuffers spend a few bytes of offsets,
// vtables and padding per field besides the data.
func nodeStatusSize(n *wire.NodeStatus) int {
	s := 160 + len(n.Addr) + 48*len(n.Tiers)
	for _, m := range n.Metrics {
		s += 32 + len(m.Name)
	}
	for _, h := range n.Persisted {
		s += 32 + len(h.Job)
	}
	return s
}

func jobStatusSize(j *wire.JobStatus) int {
	s := 200 + len(j.Job) + len(j.Name) + len(j.Tenant)
	for _, n := range j.Nodes {
		s += 48 + len(n.Addr)
	}
	return s
}
