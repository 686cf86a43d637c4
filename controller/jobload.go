package controller

import "github.com/pocketstore/pocket/wire"

// Per-job figures. A node that counts per job reports in each heartbeat
// each job's own traffic there (value bytes in and out over the interval,
// Mb/s) and the bytes it holds (wire.Heartbeat.Loads; the busiest
// wire.MaxJobLoads). The controller keeps the last jobLoadLen heartbeats'
// figures of each node, beside its history (a heartbeat kept out of the
// history, a hurried one, is kept out of these too); a job a heartbeat
// does not list used the node not at all in it. The per-job policy
// (elastic.go) and the profiles (profile.go) read a job's own figures
// from them. A node whose latest heartbeat lists none (an older node that
// does not count per job, or one no job has used yet) has its figures
// split among its jobs by allotment instead, as before nodes counted.

// jobLoadLen is how many heartbeats of per-job figures each node keeps: a
// job's traffic is averaged over at most that many (AutoscaleConfig.Smooth
// beyond it counts as jobLoadLen).
const jobLoadLen = 16

// jobLoads is one node's per-job figures of its last heartbeats.
type jobLoads struct {
	ring    [jobLoadLen]map[string]wire.JobLoad // by job id; nil: none reported
	next, n int
	reports bool // the latest heartbeat listed per-job figures
}

// add records one heartbeat's figures.
func (l *jobLoads) add(ls []wire.JobLoad) {
	var m map[string]wire.JobLoad
	if len(ls) > 0 {
		m = make(map[string]wire.JobLoad, len(ls))
		for _, jl := range ls {
			m[jl.Job] = jl
		}
	}
	l.ring[l.next] = m
	l.next = (l.next + 1) % jobLoadLen
	l.n = min(l.n+1, jobLoadLen)
	l.reports = len(ls) > 0
}

// latest is job's figure in the latest heartbeat (zero when it was not
// listed).
func (l *jobLoads) latest(job string) wire.JobLoad {
	if l.n == 0 {
		return wire.JobLoad{}
	}
	return l.ring[(l.next-1+jobLoadLen)%jobLoadLen][job]
}

// mbps is job's own traffic on the node, the larger of rx and tx in Mb/s,
// averaged over the last smooth heartbeats (at most jobLoadLen).
func (l *jobLoads) mbps(job string, smooth int) float64 {
	k := min(max(smooth, 1), l.n)
	if k == 0 {
		return 0
	}
	var sum float64
	for i := 1; i <= k; i++ {
		jl := l.ring[(l.next-i+jobLoadLen)%jobLoadLen][job]
		sum += max(jl.RxMbps, jl.TxMbps)
	}
	return sum / float64(k)
}

// jobMbpsLocked is job j's own traffic on node n, member mn of its map, in
// Mb/s over n's last smooth heartbeats: n's per-job figure for it when n
// reports them, else n's measured traffic (nodeMbps, Mb/s, over the same
// heartbeats) split by allotment (shareLocked).
func (c *Controller) jobMbpsLocked(j *job, n *node, mn wire.MapNode, smooth int, nodeMbps float64) float64 {
	if n.jobLoads.reports {
		return n.jobLoads.mbps(j.id, smooth)
	}
	return nodeMbps * c.shareLocked(j, mn)
}

// jobBytesLocked is job j's own bytes on node n, member mn of its map: n's
// latest per-job figure for it when n reports them, else the tier's used
// bytes (used) split by allotment (shareLocked).
func (c *Controller) jobBytesLocked(j *job, n *node, mn wire.MapNode, used float64) float64 {
	if n.jobLoads.reports {
		return float64(n.jobLoads.latest(j.id).Bytes)
	}
	return used * c.shareLocked(j, mn)
}
