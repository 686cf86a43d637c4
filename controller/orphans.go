package controller

import (
	"time"

	"github.com/pocketstore/pocket/wire"
)

// Orphan reconciliation.
//
// A node may hold data of a job the controller does not know: the
// controller lost its state (no Config.Store, or an empty one), a drop
// order never reached the node, or a put landed after its job's
// revocation was applied. Such a node's job table marks the job orphaned
// (its snapshot from the controller did not list it): the job's requests
// are refused, its data is kept, and every heartbeat lists it in Held
// (at most wire.MaxHeldJobs, in turn) with its bytes.
//
// The controller answers each held job in the ack:
//
//   - a live job: nothing (the node is behind, and its next snapshot or
//     change lists the job again);
//   - a job revoked within Config.OrphanGrace (a tombstone): Drop at once;
//   - a job it does not know: Drop once the node has reported it for
//     Config.OrphanGrace (10 min by default; negative: never), so a
//     controller restarted on the wrong or an empty data directory can be
//     stopped and restarted on the right one before anything is lost.
//
// Each drop order is logged (job=, node=, bytes) and counted
// (OrphansDropped, OrphanBytesDropped). A reported job the node stops
// reporting for a minute is forgotten. Nothing here is stored: after a
// restart the grace starts again.

// DefaultOrphanGrace is Config.OrphanGrace's default.
const DefaultOrphanGrace = 10 * time.Minute

// orphanForget is how long a held job may go unreported before the
// controller forgets it was held.
const orphanForget = time.Minute

// orphanSeen is a job a node reported holding that the controller does
// not know live.
type orphanSeen struct {
	first, last time.Time
	bytes       int64
	ordered     bool // a drop order was sent (counted once)
}

// tombLife is how long a revoked job's tombstone is kept: the grace, or
// the default grace when orphans are never dropped.
func (cfg *Config) tombLife() time.Duration {
	if cfg.OrphanGrace > 0 {
		return cfg.OrphanGrace
	}
	return DefaultOrphanGrace
}

// orphansLocked decides, for each job the node at addr reports holding,
// whether the node drops its data now (see above), and fills ack.Drop.
func (c *Controller) orphansLocked(addr string, held []wire.HeldJob, ack *wire.NodeAck, now time.Time) {
	seen := c.orphans[addr]
	if len(held) == 0 && len(seen) == 0 {
		return
	}
	if seen == nil {
		seen = map[string]*orphanSeen{}
		c.orphans[addr] = seen
	}
	for _, h := range held {
		if _, live := c.jobs[h.Job]; live {
			delete(seen, h.Job)
			continue
		}
		o := seen[h.Job]
		if o == nil {
			o = &orphanSeen{first: now}
			seen[h.Job] = o
			c.noteOrphanLocked(addr, h)
		}
		o.last, o.bytes = now, h.Bytes
		if c.dropDueLocked(h.Job, o, now) {
			c.orderDropLocked(addr, h, o, now)
			ack.Drop = append(ack.Drop, h)
		}
	}
	for job, o := range seen {
		if now.Sub(o.last) > orphanForget {
			delete(seen, job)
		}
	}
	if len(seen) == 0 {
		delete(c.orphans, addr)
	}
}

// noteOrphanLocked logs a held job the controller first hears of.
func (c *Controller) noteOrphanLocked(addr string, h wire.HeldJob) {
	if _, revoked := c.tombs.ids[h.Job]; revoked {
		return // dropped at once, logged then
	}
	if c.cfg.OrphanGrace < 0 {
		c.cfg.Logger.Warn("controller: node holds data of a job this controller does not know; kept (orphan grace is off)",
			"job", h.Job, "node", addr, "bytes", h.Bytes)
		return
	}
	c.cfg.Logger.Warn("controller: node holds data of a job this controller does not know; dropping it after the grace",
		"job", h.Job, "node", addr, "bytes", h.Bytes, "grace", c.cfg.OrphanGrace)
}

// dropDueLocked reports whether a held job's data must go now.
func (c *Controller) dropDueLocked(job string, o *orphanSeen, now time.Time) bool {
	if _, revoked := c.tombs.ids[job]; revoked {
		return true
	}
	return c.cfg.OrphanGrace >= 0 && now.Sub(o.first) >= c.cfg.OrphanGrace
}

// orderDropLocked logs and counts a drop order (once per job and node).
func (c *Controller) orderDropLocked(addr string, h wire.HeldJob, o *orphanSeen, now time.Time) {
	if o.ordered {
		return
	}
	o.ordered = true
	c.orphanDrops.Add(1)
	c.orphanBytes.Add(uint64(max(h.Bytes, 0)))
	if _, revoked := c.tombs.ids[h.Job]; revoked {
		c.cfg.Logger.Info("controller: node drops data of a revoked job", "job", h.Job, "node", addr, "bytes", h.Bytes)
		return
	}
	c.cfg.Logger.Warn("controller: node drops data of an orphaned job", "job", h.Job, "node", addr, "bytes", h.Bytes,
		"held_for", now.Sub(o.first).Round(time.Second))
}

// OrphansDropped is the number of drop orders sent to nodes for data of
// jobs the controller does not know or revoked (one per job and node),
// since the controller started: a counter for metrics.
func (c *Controller) OrphansDropped() uint64 { return c.orphanDrops.Load() }

// OrphanBytesDropped is the bytes those orders dropped, as the nodes
// reported them: a counter for metrics.
func (c *Controller) OrphanBytesDropped() uint64 { return c.orphanBytes.Load() }

// OrphansHeld is the number of (node, job) pairs whose data nodes report
// holding for jobs the controller does not know live: a gauge.
func (c *Controller) OrphansHeld() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, seen := range c.orphans {
		n += len(seen)
	}
	return n
}
