package controller

import (
	"maps"
	"strings"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// Stored bytes against the byte quota
//
// MaxBytesPerClient bounds what a client's live jobs are allotted (quota.go)
// and, since the nodes refuse puts, what the client stores: at every sweep
// tick (quotaTick) the controller sums the client's stored bytes, its live
// jobs' own bytes on their nodes (jobHeldBytesLocked, as pocket status
// shows them) and its ended jobs' persisted values (persistedOfLocked). A
// client past its quota has each of its live jobs marked over quota
// (wire.JobEpoch.OverQuota, a logged change every node hears at its next
// heartbeat), and the nodes refuse those jobs' puts with CodeLimit; gets,
// lists and deletes go on, and the mark is lifted once the client stores
// at most its quota again. Before, a live job's puts went on into the free
// room of every node past its client's quota (a hostile trial stored
// 4 GiB on a 64 MiB quota).
//
// What a client stores past its quota before the mark is applied is what
// its jobs put in about two heartbeat intervals: the nodes report the
// bytes, the tick marks the jobs, the nodes hear of it at their next
// heartbeat.
//
// A job whose map changes (a growth, a shrink, a drain of one of its
// nodes: changingLocked) is not marked while it changes: the values that
// move travel as the job's puts, which the nodes would refuse, and a drain
// would leave them behind. Nor is a job's mark changed more often than
// once per quotaFlipEvery, but to lift it for such a change (at the
// bump that starts it: liftQuotaLocked; else at the next tick): a client
// deleting and putting around its quota would otherwise log a change per
// job at every tick, and push the nodes behind the change log to
// snapshots.

// quotaFlipEvery is the least time between two changes of a job's mark.
const quotaFlipEvery = 2 * time.Second

// quotaTick marks the live jobs of clients storing past their byte quota,
// and lifts the marks of the others (see the top of the file).
func (c *Controller) quotaTick(now time.Time) {
	lim := c.cfg.MaxBytesPerClient
	if lim <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	stored := c.storedByClientLocked(c.persistedByClientLocked())
	for key, cl := range c.clients {
		cl.stored = stored[key]
		c.noteOverLocked(key, cl, stored[key])
	}
	for _, j := range c.jobs {
		if j.client == "" || j.revoked || j.noQuota {
			continue
		}
		over := stored[j.client] > lim
		if !over && !j.overQuota {
			continue // the common case, without changingLocked's walk of its map
		}
		changing := c.changingLocked(j)
		want := over && !changing
		if want == j.overQuota || !changing && now.Sub(j.quotaAt) < quotaFlipEvery {
			continue
		}
		j.overQuota, j.quotaAt = want, now
		c.logLocked(chQuota, j)
	}
}

// storedByClientLocked is each client's stored bytes: its live jobs' own
// bytes on their nodes and its ended jobs' persisted values, persisted as
// persistedByClientLocked gives them (in-process registrations, key "",
// left out). persisted is left as it was.
func (c *Controller) storedByClientLocked(persisted map[string]int64) map[string]int64 {
	stored := maps.Clone(persisted)
	for _, j := range c.jobs {
		if j.client != "" && !j.revoked && !j.noQuota {
			stored[j.client] = wire.SatAdd(stored[j.client], wire.SatBytes(c.jobHeldBytesLocked(j)))
		}
	}
	return stored
}

// noteOverLocked logs a client's passing its byte quota, and its coming
// back under it, once each.
func (c *Controller) noteOverLocked(key string, cl *client, stored int64) {
	over := stored > c.cfg.MaxBytesPerClient && !c.operatorKey(key)
	if cl.over == over {
		return
	}
	cl.over = over
	if over {
		c.cfg.Logger.Warn("controller: a client stores past its byte quota: its jobs' puts are refused until it stores at most its quota",
			"client", clientName(key), "stored", sizeText(stored), "quota", sizeText(c.cfg.MaxBytesPerClient))
		return
	}
	c.cfg.Logger.Info("controller: a client stores within its byte quota again: its jobs' puts are taken",
		"client", clientName(key), "stored", sizeText(stored))
}

// liftQuotaLocked lifts j's over-quota mark at once when its map is
// changing, without a change logged of its own: it is called beside the
// epoch bump that logs the change (bumpLocked, startMoveLocked after
// one), and the nodes read the mark from the job when they hear of it.
func (c *Controller) liftQuotaLocked(j *job) {
	if j.overQuota && c.changingLocked(j) {
		j.overQuota, j.quotaAt = false, time.Now()
	}
}

// operatorKey reports whether a job restored from the state with client
// key key was registered without a quota (registrant.quota ""): in
// process, or, over TLS, by the operator, whose key is its address where
// a tenant's is "tenant NAME" (holderName's reading). The state keeps no
// flag of its own.
func (c *Controller) operatorKey(key string) bool {
	return key == "" || c.cfg.TLS != nil && !strings.HasPrefix(key, tenantKey)
}
