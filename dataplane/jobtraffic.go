package dataplane

import "sync/atomic"

// Per-job traffic: the value (payload) bytes the node receives for each
// job (puts) and sends for it (gets), counted at the same places as the
// node's own counters (ops.go), for the heartbeat's per-job figures
// (wire.Heartbeat.Loads, computed by the agent from JobTraffic).
//
// A job's counters are made on its first counted request here and hang
// off its job-table entry, which the request has looked up already: one
// cache line per event loop, each written by its loop only, so counting
// costs a request one atomic load of the entry's pointer and one
// uncontended add on a line its loop owns, with no lock, no map lookup
// and no line two loops write. A request of a job with no entry (a node
// with no controller, or one not synced yet) is counted in the node's
// figures only.

// jobTraffic is one job's counters on this node.
type jobTraffic struct {
	job   string
	entry *jobEntry // the entry they belong to: a new job under the same id starts again
	loops []trafficSlot
}

// trafficSlot is one loop's counters of a job.
type trafficSlot struct {
	in, out atomic.Uint64
	_       [48]byte // one cache line each
}

// traffic returns the counters of the job whose entry e is (the job's id
// is job), making them on its first call; nil when e is nil.
func (j *jobTable) traffic(e *jobEntry, job []byte) *jobTraffic {
	if e == nil {
		return nil
	}
	if t := e.traffic.Load(); t != nil {
		return t
	}
	return j.newTraffic(e, job)
}

func (j *jobTable) newTraffic(e *jobEntry, job []byte) *jobTraffic {
	j.trafMu.Lock()
	defer j.trafMu.Unlock()
	if t := e.traffic.Load(); t != nil {
		return t
	}
	t := &jobTraffic{job: string(job), entry: e, loops: make([]trafficSlot, max(1, j.loops))}
	e.traffic.Store(t)
	j.counted = append(j.counted, t)
	return t
}

// addIn counts b value bytes received for the job on event loop loop (a
// nil t counts nothing).
func (t *jobTraffic) addIn(loop int, b uint64) {
	if t != nil {
		t.slot(loop).in.Add(b)
	}
}

// addOut counts b value bytes sent for the job on event loop loop.
func (t *jobTraffic) addOut(loop int, b uint64) {
	if t != nil {
		t.slot(loop).out.Add(b)
	}
}

// slot is loop's counters: a loop's index is under the node's loop
// count, so the division is only for a node whose loops outnumber the
// slots (never).
func (t *jobTraffic) slot(loop int) *trafficSlot {
	if loop >= len(t.loops) {
		loop %= len(t.loops)
	}
	return &t.loops[loop]
}

// totals sums the loops' counters.
func (t *jobTraffic) totals() (in, out uint64) {
	for i := range t.loops {
		in += t.loops[i].in.Load()
		out += t.loops[i].out.Load()
	}
	return in, out
}

// countedJobs returns the counters of the jobs whose entry is still the
// table's, forgetting those whose entry left the table (its cost follows
// the jobs counted on this node, not the table's size).
func (j *jobTable) countedJobs() []*jobTraffic {
	j.trafMu.Lock()
	defer j.trafMu.Unlock()
	keep := j.counted[:0]
	for _, t := range j.counted {
		if j.lookup([]byte(t.job)) == t.entry {
			keep = append(keep, t)
		}
	}
	clear(j.counted[len(keep):])
	j.counted = keep
	return append([]*jobTraffic(nil), keep...)
}
