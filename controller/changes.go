package controller

import (
	"container/heap"
	"sort"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// Revisions and the nodes' job tables.
//
// Every change a node must hear of gets the next revision number (c.rev)
// and an entry in a ring (changeLog): a job registered (chAdd), a job's
// map changed (chEpoch), a job deregistered or expired (chRevoke), its
// client passed its byte quota or came back under it (chQuota), each
// for every node: a node outside a job's map learns its epochs too, marked
// out (wire.JobEpoch.Out), and refuses clients routing by a map from
// before it left, or by any map that does not name it. A node a job lost
// (dead.go) hears of its epochs as its map's nodes do. A job's token
// carries the revision that registered it (its gen).
//
// A node's heartbeat names the revision its table is at; the ack carries
// the jobs changed since (each once, in its current state, at most
// maxAckJobs of them or maxAckBytes; More says the rest follows) and the
// revision the node is then at. A node with no revision, one from another
// controller run, or one older than the ring gets a snapshot instead: every
// live job, page by page in registration order (Full, After), at the
// revision the snapshot started; the changes made while it was sent follow
// as ordinary changes. The work per heartbeat is proportional to what
// changed, not to the number of jobs.
//
// A node that knows the revision R holds every job registered at or before
// R that is still live; a token with a gen at or before R whose job it does
// not hold is revoked. A gen after R is a job the node has not heard of
// yet (it is one heartbeat behind): it accepts the token and learns the
// job at its next heartbeat.
//
// Revisions start at the controller's start time in nanoseconds, so a
// restarted controller's revisions (and therefore its tokens' gens) are
// above those of any earlier run on a clock that did not step back: the
// tokens of jobs an earlier run registered are revoked by the nodes once
// they sync with the new run, whose registry does not know those jobs.

// changeKind says what happened to a job.
type changeKind uint8

const (
	chAdd    changeKind = iota + 1 // registered: every node
	chEpoch                        // its map changed: the nodes in it
	chRevoke                       // deregistered or expired: every node
	chQuota                        // its over-quota mark changed (quotafull.go): every node
)

// change is one logged change.
type change struct {
	kind changeKind
	j    *logJob
}

// logJob is what the log holds of a job, one per job, shared by its
// changes: the job while it is live, and once it is revoked only what a
// node's table needs of a revoked job (entryLocked). The log keeps
// changeLogLen changes, about 32,000 jobs' worth when jobs are short:
// holding each revoked job whole (its maps, token, trace, hints) kept
// about 1 KB a job alive, 31 MB after 30,000 short jobs had ended.
type logJob struct {
	j       *job // nil once revoked
	id      string
	gen     uint64
	expires time.Time
	owner   string // job.client, once revoked (wire.JobEpoch.Owner)
}

// changeLogLen is how many changes the ring keeps: a node further behind
// gets a snapshot.
const changeLogLen = 1 << 16

// Bounds of one ack: entries and (estimated) bytes, well under the control
// frame limit.
const (
	maxAckJobs  = 4096
	maxAckBytes = 1 << 20
)

// changeLog is a ring of the latest changes; the change with revision r
// sits at index r-first from the oldest. Revisions are contiguous. It grows
// to changeLogLen entries, then overwrites the oldest.
type changeLog struct {
	buf   []change
	head  int    // index of the oldest entry once the ring is full
	first uint64 // revision of the oldest entry
}

func (l *changeLog) add(rev uint64, ch change) {
	if len(l.buf) == 0 {
		l.first = rev
	}
	if len(l.buf) < changeLogLen {
		l.buf = append(l.buf, ch)
		return
	}
	l.buf[l.head] = ch // overwrite the oldest
	l.head = (l.head + 1) % len(l.buf)
	l.first++
}

// at returns the change with revision rev, which the log must hold.
func (l *changeLog) at(rev uint64) change {
	return l.buf[(l.head+int(rev-l.first))%len(l.buf)]
}

// initRevisions starts the revision counter at the controller's start time.
func (c *Controller) initRevisions(now time.Time) {
	c.rev = uint64(now.UnixNano())
	c.log.first = c.rev + 1
}

// logLocked records a change at the next revision and returns it.
func (c *Controller) logLocked(kind changeKind, j *job) uint64 {
	c.rev++
	if j.logged == nil {
		j.logged = &logJob{j: j, id: j.id}
	}
	lj := j.logged
	if kind == chRevoke {
		// Its last change: the log lets go of the job itself.
		lj.gen, lj.expires, lj.owner, lj.j = j.gen, j.expires, j.client, nil
	}
	c.log.add(c.rev, change{kind: kind, j: lj})
	return c.rev
}

// coversLocked reports whether the changes after revision since are all
// in the log (since == c.rev: nothing changed).
func (c *Controller) coversLocked(since uint64) bool {
	return since != 0 && since >= c.log.first-1 && since <= c.rev
}

// jobTableLocked fills an ack with what the node at addr needs to bring
// its job table from the heartbeat's revision to the latest.
func (c *Controller) jobTableLocked(addr string, hb *wire.Heartbeat, ack *wire.NodeAck) {
	switch {
	case hb.SnapRev != 0:
		c.snapshotLocked(addr, hb.SnapRev, hb.SnapAfter, ack)
	case c.coversLocked(hb.Since):
		c.deltaLocked(addr, hb.Since, ack)
	default:
		c.snapshotLocked(addr, 0, 0, ack)
	}
}

// entryLocked is the job's entry in the table of the node at addr: its
// epoch, marked out when the node is not in its map. A node the job lost
// (dead.go) gets the epoch unmarked, as before out existed: it refuses
// clients still routing by a map from before the loss, and its mover
// keeps checking the job.
func (c *Controller) entryLocked(j *job, addr string) wire.JobEpoch {
	e := wire.JobEpoch{Job: j.id, Gen: j.gen, Expires: j.expires, Revoked: j.revoked, Owner: tableOwner(j.client)}
	if j.revoked {
		return e
	}
	e.Epoch = j.epoch
	e.Tiers = 1 << j.tier // its puts go to the tier it was placed and priced on
	e.OverQuota = j.overQuota
	if !j.noQuota && j.client != "" {
		e.MaxBytes = c.cfg.MaxBytesPerClient // a client's jobs store no more on one node
	}
	if l := c.loads[addr]; l != nil {
		if _, ok := l.jobs[j]; ok {
			if j.pub != nil && j.pub.Epoch < j.epoch {
				e.Keep = keepNodes(j.pub, c.mapLocked(j), addr)
			}
			if e.Keep != nil {
				e.KeepEpoch = j.pub.Epoch
			}
			return e
		}
	}
	e.Out = !c.lostByLocked(j, addr)
	return e
}

// deltaLocked sends the changes after since that concern the node.
func (c *Controller) deltaLocked(addr string, since uint64, ack *wire.NodeAck) {
	var seen map[*logJob]struct{}
	size := 0
	rev := since
	for ; rev < c.rev; rev++ {
		if len(ack.Jobs) >= maxAckJobs || size >= maxAckBytes {
			ack.More = true
			break
		}
		ch := c.log.at(rev + 1)
		if _, dup := seen[ch.j]; dup {
			continue
		}
		if seen == nil {
			seen = map[*logJob]struct{}{}
		}
		seen[ch.j] = struct{}{}
		if j := ch.j.j; j != nil {
			ack.Jobs = append(ack.Jobs, c.entryLocked(j, addr))
		} else {
			ack.Jobs = append(ack.Jobs, wire.JobEpoch{Job: ch.j.id, Gen: ch.j.gen, Expires: ch.j.expires, Revoked: true, Owner: tableOwner(ch.j.owner)})
		}
		size += entrySize(&ack.Jobs[len(ack.Jobs)-1])
	}
	ack.Rev = rev
}

// tableOwner is the owner a node's table says of a job registered by
// client (job.client): the client, or "" when it is longer than the wire
// allows (the node then counts the job as its own owner).
func tableOwner(client string) string {
	if len(client) > wire.MaxOwnerLen {
		return ""
	}
	return client
}

// entrySize estimates a JobEpoch's encoded bytes.
func entrySize(e *wire.JobEpoch) int {
	size := len(e.Job) + len(e.Owner) + 64
	for _, n := range e.Keep {
		size += len(n.Addr) + 32
	}
	return size
}

// snapshotLocked sends the page of live jobs after the gen `after` of the
// snapshot that started at snapRev; a snapshot whose revision the log no
// longer covers (or none) starts again at the current revision.
func (c *Controller) snapshotLocked(addr string, snapRev, after uint64, ack *wire.NodeAck) {
	if !c.coversLocked(snapRev) {
		snapRev, after = c.rev, 0
	}
	ack.Full, ack.Rev = true, snapRev
	size := 0
	i := c.order.after(after)
	for ; i < len(c.order.jobs); i++ {
		j := c.order.jobs[i]
		if j == nil {
			continue
		}
		if len(ack.Jobs) >= maxAckJobs || size >= maxAckBytes {
			break
		}
		ack.Jobs = append(ack.Jobs, c.entryLocked(j, addr))
		size += entrySize(&ack.Jobs[len(ack.Jobs)-1])
		after = j.gen
	}
	ack.After = after
	ack.More = c.order.liveAfter(after)
}

// jobOrder holds the live jobs in registration order (by gen, which only
// grows): appending keeps it sorted, a removal leaves a hole (nil), and
// the slice is compacted when holes outnumber jobs, so every operation is
// O(1) amortized, or O(log n) to find a cursor.
type jobOrder struct {
	jobs  []*job
	gens  []uint64 // gens[i] is jobs[i]'s gen, kept for holes too
	holes int
	pos   map[*job]int
}

func (o *jobOrder) add(j *job) {
	if o.pos == nil {
		o.pos = map[*job]int{}
	}
	o.pos[j] = len(o.jobs)
	o.jobs = append(o.jobs, j)
	o.gens = append(o.gens, j.gen)
}

func (o *jobOrder) remove(j *job) {
	i, ok := o.pos[j]
	if !ok {
		return
	}
	delete(o.pos, j)
	o.jobs[i] = nil
	o.holes++
	if o.holes > 64 && o.holes > len(o.jobs)/2 {
		o.compact()
	}
}

func (o *jobOrder) compact() {
	jobs, gens := o.jobs[:0], o.gens[:0]
	for i, j := range o.jobs {
		if j != nil {
			o.pos[j] = len(jobs)
			jobs = append(jobs, j)
			gens = append(gens, o.gens[i])
		}
	}
	clear(o.jobs[len(jobs):])
	o.jobs, o.gens, o.holes = jobs, gens, 0
}

// after returns the index of the first slot whose gen is above gen.
func (o *jobOrder) after(gen uint64) int {
	return sort.Search(len(o.gens), func(i int) bool { return o.gens[i] > gen })
}

// liveAfter reports whether a live job follows gen.
func (o *jobOrder) liveAfter(gen uint64) bool {
	for i := o.after(gen); i < len(o.jobs); i++ {
		if o.jobs[i] != nil {
			return true
		}
	}
	return false
}

// len is the number of live jobs.
func (o *jobOrder) len() int { return len(o.jobs) - o.holes }

// expiryHeap orders the jobs that expire by expiry, soonest first.
type expiryHeap []*job

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(a, b int) bool { return h[a].expires.Before(h[b].expires) }
func (h expiryHeap) Swap(a, b int) {
	h[a], h[b] = h[b], h[a]
	h[a].heapIdx, h[b].heapIdx = a, b
}
func (h *expiryHeap) Push(x any) {
	j := x.(*job)
	j.heapIdx = len(*h)
	*h = append(*h, j)
}
func (h *expiryHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	j.heapIdx = -1
	return j
}

func (h *expiryHeap) add(j *job) {
	if !j.expires.IsZero() {
		heap.Push(h, j)
	}
}

func (h *expiryHeap) remove(j *job) {
	if j.heapIdx >= 0 {
		heap.Remove(h, j.heapIdx)
	}
}

// peek returns the job that expires first, nil when none does.
func (h expiryHeap) peek() *job {
	if len(h) == 0 {
		return nil
	}
	return h[0]
}
