package controller

import (
	"time"

	"github.com/pocketstore/pocket/wire"
)

// Per-job figures. A node that counts per job reports in each heartbeat
// each job's own traffic there (value bytes in and out over the interval,
// Mb/s) and the bytes it holds (wire.Heartbeat.Loads; the busiest
// wire.MaxJobLoads). The controller keeps the last jobLoadLen heartbeats'
// figures of each node, beside its history (a heartbeat kept out of the
// history, a hurried one, is kept out of these too), each with the time
// it arrived; a job a heartbeat does not list used the node not at all in
// it. The per-job policy (elastic.go) and the profiles (profile.go) read
// a job's own figures from them. A node counts per job when its latest
// heartbeat lists figures or carries its incarnation (every node that
// sends one counts per job): then a job it does not list used it not at
// all, even when it lists none (no job has used it yet). Only an older
// node, whose heartbeats carry neither, has its figures split among its
// jobs by allotment instead, as before nodes counted.
//
// Moves are not the job's load. A node counts every put it admits for a
// job, and the values a map change moves (a growth, a shrink, a drain:
// elastic.go, drain.go) travel as the job's puts, with its token: a job
// no client uses shows hundreds of Mb/s while its values move. So a
// heartbeat counts for a job only when the whole interval it covers (from
// the node's previous heartbeat to it) lies after the job's latest epoch
// bump and the job's map is not changing (settledLocked): every change
// bumps the epoch when it starts and again when it ends, so no counted
// interval overlaps one. Until a node has sent the Smooth heartbeats
// after a change, the job's figures there are "settling" (JobUtil.
// Settling): they count only the heartbeats since the change (none while
// it runs), the per-job policy does not grow the job on them, and its
// profile's peaks do not take them. A node that does not count per job
// has its measured traffic over the same heartbeats split by allotment.

// jobLoadLen is how many heartbeats of per-job figures each node keeps: a
// job's traffic is averaged over at most that many (AutoscaleConfig.Smooth
// beyond it counts as jobLoadLen).
const jobLoadLen = 16

// jobLoadBeat is one heartbeat's per-job figures.
type jobLoadBeat struct {
	figs map[string]wire.JobLoad // by job id; nil: none reported
	from time.Time               // the node's previous heartbeat kept (zero: none)
}

// jobLoads is one node's per-job figures of its last heartbeats.
type jobLoads struct {
	ring    [jobLoadLen]jobLoadBeat
	next, n int
	last    time.Time // when the latest heartbeat was kept
	reports bool      // the latest heartbeat listed per-job figures
}

// add records one heartbeat's figures, kept now; counts is true when the
// node counts per job whether or not it lists any (see the doc above).
func (l *jobLoads) add(ls []wire.JobLoad, counts bool) {
	now := time.Now()
	var m map[string]wire.JobLoad
	if len(ls) > 0 {
		m = make(map[string]wire.JobLoad, len(ls))
		for _, jl := range ls {
			m[jl.Job] = jl
		}
	}
	l.ring[l.next] = jobLoadBeat{figs: m, from: l.last}
	l.next = (l.next + 1) % jobLoadLen
	l.n = min(l.n+1, jobLoadLen)
	l.last = now
	l.reports = counts || len(ls) > 0
}

// beat is the i-th latest heartbeat kept (1: the latest); i <= l.n.
func (l *jobLoads) beat(i int) *jobLoadBeat {
	return &l.ring[(l.next-i+jobLoadLen)%jobLoadLen]
}

// latest is job's figure in the latest heartbeat (zero when it was not
// listed).
func (l *jobLoads) latest(job string) wire.JobLoad {
	if l.n == 0 {
		return wire.JobLoad{}
	}
	return l.beat(1).figs[job]
}

// held is job's bytes on the node in the latest heartbeat kept, and
// whether it listed the job.
func (l *jobLoads) held(job string) (int64, bool) {
	if l.n == 0 {
		return 0, false
	}
	jl, ok := l.beat(1).figs[job]
	return jl.Bytes, ok
}

// heldNone reports whether the latest heartbeat kept lists job as
// holding no bytes on the node (not listed: not known).
func (l *jobLoads) heldNone(job string) bool {
	if l.n == 0 {
		return false
	}
	jl, ok := l.beat(1).figs[job]
	return ok && jl.Bytes == 0
}

// window is how many heartbeats an average over smooth takes: smooth (at
// least 1, at most jobLoadLen), or fewer when fewer were kept.
func (l *jobLoads) window(smooth int) int {
	return min(max(smooth, 1), jobLoadLen, l.n)
}

// mbps is job's own traffic on the node, the larger of rx and tx in Mb/s,
// averaged over the last smooth heartbeats (at most jobLoadLen).
func (l *jobLoads) mbps(job string, smooth int) float64 {
	return l.mbpsOver(job, l.window(smooth))
}

// mbpsOver is job's own traffic on the node averaged over the last k
// heartbeats (k <= l.n; 0 when k is 0), each heartbeat's figure held
// within one node's bandwidth (wire.MaxNodeMbps, as the heartbeat decoder
// bounds it), so that the job's sums over its nodes stay finite.
func (l *jobLoads) mbpsOver(job string, k int) float64 {
	if k <= 0 {
		return 0
	}
	var sum float64
	for i := 1; i <= k; i++ {
		jl := l.beat(i).figs[job]
		sum += wire.ClampMbps(max(jl.RxMbps, jl.TxMbps), wire.MaxNodeMbps)
	}
	return sum / float64(k)
}

// peak is job's own traffic on the node at its highest over the last
// smooth heartbeats (at most jobLoadLen), each held as mbpsOver holds it.
func (l *jobLoads) peak(job string, smooth int) float64 {
	var p float64
	for i := 1; i <= l.window(smooth); i++ {
		jl := l.beat(i).figs[job]
		p = max(p, wire.ClampMbps(max(jl.RxMbps, jl.TxMbps), wire.MaxNodeMbps))
	}
	return p
}

// since is how many of the last smooth heartbeats (window) began at or
// after t: the latest ones, up to the first that began before it.
func (l *jobLoads) since(t time.Time, smooth int) int {
	k := 0
	for k < l.window(smooth) && !l.beat(k+1).from.Before(t) {
		k++
	}
	return k
}

// ownLocked is job j's own traffic on node n, member mn of its map, in
// Mb/s, and whether it is settled there (see the doc above). It is
// averaged over those of n's last smooth heartbeats that began after j's
// latest epoch bump (none while j's map changes: 0): n's per-job figure
// for j when n reports them, else n's measured traffic over the same
// heartbeats split by allotment (shareLocked).
func (c *Controller) ownLocked(j *job, n *node, mn wire.MapNode, smooth int) (mbps float64, settled bool) {
	if c.changingLocked(j) {
		return 0, false
	}
	l := &n.jobLoads
	k := l.since(j.bumped, smooth)
	settled = k >= l.window(smooth)
	switch {
	case l.n == 0:
		return c.measuredLocked(n, smooth) * c.nodeMbps(n) * c.shareLocked(j, mn), true
	case k == 0:
		return 0, settled
	case l.reports:
		return l.mbpsOver(j.id, k), settled
	}
	return c.measuredLocked(n, k) * c.nodeMbps(n) * c.shareLocked(j, mn), settled
}

// rawMbpsLocked is job j's traffic on node n, member mn of its map, at
// its peak over n's last smooth heartbeats, moves included: n's per-job
// figure for it when n reports them, else n's measured traffic split by
// allotment. It is the figure that errs high (a move only adds to it, a
// heartbeat's dip does not lower it), for the tests that must not make a
// node busier than they think (dropSafeLocked).
func (c *Controller) rawMbpsLocked(j *job, n *node, mn wire.MapNode, smooth int) float64 {
	if n.jobLoads.reports {
		return n.jobLoads.peak(j.id, smooth)
	}
	return c.peakLocked(n, smooth) * c.nodeMbps(n) * c.shareLocked(j, mn)
}

// settledLocked reports whether j's figures on node n over its last
// smooth heartbeats are its own load: j's map is not changing and each of
// those heartbeats covers only time since j's latest epoch bump.
func (c *Controller) settledLocked(j *job, n *node, smooth int) bool {
	return !c.changingLocked(j) && n.jobLoads.since(j.bumped, smooth) >= n.jobLoads.window(smooth)
}

// jobBytesLocked is job j's own bytes on node n, member mn of its map: n's
// latest per-job figure for it when n reports them, else the tier's used
// bytes (used) split by allotment (shareLocked). A heartbeat that lists
// wire.MaxJobLoads jobs (the busiest) and not j says nothing of j's bytes
// (unlisted): then the latest kept heartbeat that listed j gives them, or,
// when none of the last jobLoadLen did, the split by allotment. Before, j
// counted 0 bytes there: a hostile trial's 1,040 busy jobs of another
// client made a quiet job's 20 MB read 0 in status for as long as they
// ran, and the per-job policy and drains read the same 0.
func (c *Controller) jobBytesLocked(j *job, n *node, mn wire.MapNode, used float64) float64 {
	l := &n.jobLoads
	if !l.reports {
		return used * c.shareLocked(j, mn)
	}
	if !unlisted(l, j.id) {
		return float64(l.latest(j.id).Bytes)
	}
	if b, ok := l.lastListed(j.id); ok {
		return float64(b)
	}
	return used * c.shareLocked(j, mn)
}

// lastListed is job's bytes in the latest kept heartbeat that listed it,
// and whether one of the last jobLoadLen did.
func (l *jobLoads) lastListed(job string) (int64, bool) {
	for i := 1; i <= l.n; i++ {
		if jl, ok := l.beat(i).figs[job]; ok {
			return jl.Bytes, true
		}
	}
	return 0, false
}
