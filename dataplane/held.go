package dataplane

import (
	"sort"

	"github.com/pocketstore/pocket/wire"
)

// Held jobs: the node's half of orphan reconciliation (package controller,
// orphans.go). A job the controller's snapshot did not list that may hold
// data here is orphaned in the job table (jobtable.go): refused, its data
// kept. Each heartbeat reports a batch of them with their bytes (HeldJobs);
// the controller answers which to drop (DropHeld), after its grace for a
// job it does not know, at once for one it revoked.

// HeldJobs returns up to k orphaned jobs with their bytes on this node
// (all tiers), for wire.Heartbeat.Held; k is at most wire.MaxHeldJobs.
// With more orphans than k, each call starts at a random one.
func (n *Node) HeldJobs(k int) []wire.HeldJob {
	jobs := n.jobs.heldBatch(min(k, wire.MaxHeldJobs))
	if len(jobs) == 0 {
		return nil
	}
	out := make([]wire.HeldJob, len(jobs))
	for i, job := range jobs {
		out[i] = wire.HeldJob{Job: job, Bytes: n.jobUsage([]byte(job))}
	}
	return out
}

// DropHeld carries out the controller's drop orders (wire.NodeAck.Drop):
// each job is revoked and its values dropped, persistent ones kept (as
// for a deregistered job), on a goroutine of its own (bgdrop.go: the
// caller is the heartbeat's). A job the table holds live or pending is
// left alone: an order can only be for a job the controller does not list.
func (n *Node) DropHeld(drop []wire.HeldJob) {
	for _, h := range drop {
		if !n.jobs.droppable(h.Job) {
			n.log.Warn("ignored the controller's order to drop a live job's data", "job", h.Job)
			continue
		}
		n.bg.start(h.Job, func() { n.dropHeld(h.Job) })
	}
}

// dropHeld drops an orphaned job's data, checking again that the job is
// still one to drop: it may have been listed again since the order came.
func (n *Node) dropHeld(job string) {
	if !n.jobs.droppable(job) {
		return
	}
	freed := n.DropJob([]byte(job), true)
	n.log.Info("dropped an orphaned job's data on the controller's order", "job", job, "values", freed.Values, "bytes", freed.Bytes)
}

// PersistedJobs reports the persist-after-job values of ended jobs this
// node keeps (wire.Heartbeat.Persisted): up to k jobs (at most
// wire.MaxPersistedJobs) with their bytes here (all tiers), the largest
// first, and the count and bytes of all of them. A retired job counts
// (deregistered or expired, its persistent values remain), and so does a
// job whose values are being dropped, with its bytes so far: what stays is
// not known until the drop ends. The controller knows none of these jobs
// any more; the report is what keeps a drain or scale-in from taking the
// values away unasked (controller/drain.go). Its cost is one usage look-up
// per such job.
func (n *Node) PersistedJobs(k int) (list []wire.HeldJob, jobs uint64, bytes int64) {
	for _, job := range n.jobs.ended() {
		b := n.jobUsage([]byte(job))
		if b <= 0 {
			continue // its values were deleted: the next check forgets it
		}
		list = append(list, wire.HeldJob{Job: job, Bytes: b})
		jobs++
		bytes += b
	}
	sort.Slice(list, func(x, y int) bool {
		if list[x].Bytes != list[y].Bytes {
			return list[x].Bytes > list[y].Bytes
		}
		return list[x].Job < list[y].Job
	})
	return list[:min(len(list), k, wire.MaxPersistedJobs)], jobs, bytes
}
