package controller

import (
	"fmt"
	"math"
	"strconv"

	"github.com/pocketstore/pocket/internal/units"
	"github.com/pocketstore/pocket/wire"
)

// Allotment quotas (Config.MaxBytesPerClient, MaxMbpsPerClient) bound the
// sum of one client's live jobs' allotments (job.allocBytes, allocMbps),
// with, for bytes, the persisted values its ended jobs keep
// (persistedOfLocked), a client being a tenant over TLS, else an address
// (limitKey). The
// operator's registrations over TLS have none (registrant.quota ""): the
// operator sets the quotas and registers the cluster's jobs.
//
//   - A hinted need beyond what is left is refused (CodeLimit naming the
//     limit, what the client holds and what is left), before the
//     autoscaler starts any node for it.
//   - A need from the name's profile is cut to what is left: the job asked
//     for nothing, as fitProfile.
//   - A job Pocket's default sizes is allotted one lambda's bandwidth
//     (Policy.PerLambdaMbps) under a Mb/s quota, not the default's 16 Gb/s:
//     taking what was left, a new user's first hintless job took the
//     team's whole quota, and every hinted job of the team after it was
//     refused. Its map grows with its measured traffic as any job's does
//     (elastic.go). A job hinting capacity alone counts one lambda's too:
//     allotted no bandwidth, it had let a team past its Mb/s quota (two
//     trials). So does one hinting less than one lambda's bandwidth: a
//     hostile trial registered 30 jobs at --peak-mbps 0.000001 on 188 Mb/s
//     left, 0.00003 Mb/s of the quota in all.
//   - A job without a bandwidth hint is refused when less than one
//     lambda's bandwidth is left.
//
// Without the quotas one client's hints held every node's capacity, and on
// an autoscaling cluster its bandwidth hints kept MaxNodes nodes running,
// idle or not.

// quotaLocked holds need within what the client (key; "" has no quota)
// may still allot itself (see the top of the file).
func (c *Controller) quotaLocked(key string, need Need) (Need, error) {
	leftBytes, leftMbps := c.quotaLeftLocked(key)
	hinted := need.Source == SizeHints
	if leftBytes == 0 && c.cfg.MaxBytesPerClient > 0 {
		// A job sized without hints was cut to what is left, even
		// nothing, and stored as fast as its nodes took puts until the
		// controller marked it (a hostile re-check: 20 such jobs, none
		// refused, 2.3 GiB on a 64 MiB quota).
		return need, c.quotaError(key, "MaxBytesPerClient", units.FormatSize(c.cfg.MaxBytesPerClient),
			"nothing of it is left", "delete values")
	}
	if need.Bytes > leftBytes {
		if hinted {
			return need, c.quotaError(key, "MaxBytesPerClient", units.FormatSize(c.cfg.MaxBytesPerClient),
				fmt.Sprintf("its capacity hint of %s is more than the %s left", sizeText(need.Bytes), sizeText(leftBytes)), "hint less")
		}
		need.Bytes = leftBytes
	}
	if math.IsInf(leftMbps, 1) {
		return need, nil
	}
	lambda := c.cfg.Policy.PerLambdaMbps
	bwHinted := hinted && need.Mbps > 0
	hint := need.Mbps
	switch {
	case need.Source == SizeDefault:
		need.Mbps = min(need.Mbps, lambda)
	case hinted && need.Mbps < lambda: // a capacity hint alone, or less than a lambda's
		need.Mbps = lambda
	}
	if need.Mbps <= leftMbps {
		return need, nil
	}
	limit, value := "MaxMbpsPerClient", mbpsText(c.cfg.MaxMbpsPerClient)
	switch {
	case bwHinted && hint < lambda:
		return need, c.quotaError(key, limit, value,
			fmt.Sprintf("its hint of %s Mb/s counts one lambda's %s Mb/s under the quota, and %s Mb/s is left",
				mbpsText(hint), mbpsText(lambda), mbpsText(leftMbps)), "")
	case bwHinted:
		return need, c.quotaError(key, limit, value,
			fmt.Sprintf("its hints' need of %s Mb/s is more than the %s Mb/s left", mbpsText(need.Mbps), mbpsText(leftMbps)), "hint less")
	case leftMbps < lambda:
		// No hint helps: one below a lambda's counts a lambda's. Before,
		// the refusal advised a --peak-mbps hint of what was left, which
		// was then refused (a new user's trial).
		return need, c.quotaError(key, limit, value,
			fmt.Sprintf("a job counts at least one lambda's %s Mb/s under the quota, hinted or not, and %s Mb/s is left", mbpsText(lambda), mbpsText(leftMbps)), "")
	}
	need.Mbps = leftMbps
	return need, nil
}

// quotaReplyLocked is the client's quotas and what is left of them, for a
// registration's reply (zero without a quota: an operator's, in process,
// or none configured).
func (c *Controller) quotaReplyLocked(key string) wire.QuotaLeft {
	var q wire.QuotaLeft
	if key == "" {
		return q
	}
	leftBytes, leftMbps := c.quotaLeftLocked(key)
	if c.cfg.MaxBytesPerClient > 0 {
		q.Bytes, q.LeftBytes = c.cfg.MaxBytesPerClient, leftBytes
	}
	if c.cfg.MaxMbpsPerClient > 0 {
		q.Mbps, q.LeftMbps = c.cfg.MaxMbpsPerClient, leftMbps
	}
	return q
}

// sizeText is units.FormatSize(n), with the exact count when that rounds.
func sizeText(n int64) string {
	s := units.FormatSize(n)
	if back, err := units.ParseSize(s); err != nil || back != n {
		s += fmt.Sprintf(" (%d bytes)", n)
	}
	return s
}

// quotaLeftLocked is what the client may still allot itself, in bytes and
// Mb/s (MaxInt64 and +Inf when unbounded).
func (c *Controller) quotaLeftLocked(key string) (int64, float64) {
	bytes, mbps := int64(math.MaxInt64), math.Inf(1)
	if key == "" {
		return bytes, mbps
	}
	var cl client
	if p := c.clients[key]; p != nil {
		cl = *p
	}
	if lim := c.cfg.MaxBytesPerClient; lim > 0 {
		// What it holds: its allotments and persisted values, or what it
		// stores where that is more (its jobs' puts go past their
		// allotments: quotafull.go). Before, a client storing 2 GiB on a
		// 64 MiB quota registered job after job (a hostile re-check).
		held := max(cl.bytes+c.persistedOfLocked(key), cl.stored)
		bytes = max(lim-held-cl.pend.Bytes, 0)
	}
	if lim := c.cfg.MaxMbpsPerClient; lim > 0 {
		mbps = max(lim-cl.mbps-cl.pend.Mbps, 0)
	}
	return bytes, mbps
}

// persistedOfLocked is the bytes the client's ended jobs' persist-after-
// job values hold on the nodes of their final maps, as the nodes last
// reported (wire.Heartbeat.Persisted): they count against its byte quota
// until deleted. A node that has not applied a job's end yet (its table
// is behind the revocation, it is dead, or not heard from this run)
// counts the bytes it said it keeps in its answer to the job's drop order
// (noteKept), else the job's bytes in its last per-job figures, all of
// them (the node has not yet told which are persisted). A node whose list
// leaves jobs out (more than wire.MaxPersistedJobs, the largest kept)
// counts each job it leaves out at the smallest it names, and a client's
// such jobs together at most at what the list leaves out (unlistedOf):
// counted at nothing, 65 or more small ended jobs a node kept for one
// client went past the quota uncounted. Ended jobs whose final maps are no
// longer kept (Config.MaxEndedJobs) count nothing. Before, a
// deregistration gave the job's allotment back while its persisted values
// stayed: a hostile trial's client with a 64 MiB quota stored 4 GiB of
// NVMe and 255 MiB of DRAM so, and another client's 32 MiB registration
// was refused for space.
func (c *Controller) persistedOfLocked(key string) int64 {
	return c.persistedSumLocked(func(client string) bool { return client == key })[key]
}

// persistedByClientLocked is persistedOfLocked of every client that has
// ended jobs with kept final maps, by client key (in-process
// registrations, key "", left out).
func (c *Controller) persistedByClientLocked() map[string]int64 {
	return c.persistedSumLocked(func(client string) bool { return client != "" })
}

// persistedSumLocked sums persistedOfLocked for the clients keep selects.
func (c *Controller) persistedSumLocked(keep func(client string) bool) map[string]int64 {
	type at struct{ client, addr string }
	m := make(map[string]int64)
	var unlisted map[at]int64
	for _, e := range c.ended.ids {
		if !keep(e.client) {
			continue
		}
		for _, mn := range e.nodes {
			b, named := c.persistedOnLocked(mn.Addr, e)
			switch {
			case b <= 0:
			case named:
				m[e.client] = wire.SatAdd(m[e.client], b)
			default:
				if unlisted == nil {
					unlisted = make(map[at]int64)
				}
				k := at{e.client, mn.Addr}
				unlisted[k] = wire.SatAdd(unlisted[k], b)
			}
		}
	}
	for k, b := range unlisted {
		m[k.client] = wire.SatAdd(m[k.client], min(b, c.nodes[k.addr].persisted.unlisted()))
	}
	return m
}

// persistedOnLocked is the bytes of e's persisted values on the node at
// addr (see persistedOfLocked), and whether the node named them; a job
// the node's list leaves out is given the most it may hold, the smallest
// the list names.
func (c *Controller) persistedOnLocked(addr string, e *endedJob) (bytes int64, named bool) {
	n, ok := c.nodes[addr]
	switch {
	case !ok:
		return 0, true
	case n.state == wire.NodeDead, n.unheard, n.since < e.rev:
		if k, ok := e.kept[addr]; ok {
			return k, true
		}
		b, _ := n.jobLoads.held(e.id)
		return b, true
	}
	p := &n.persisted
	for _, h := range p.largest {
		if h.Job == e.id {
			return h.Bytes, true
		}
	}
	if p.jobs <= uint64(len(p.largest)) {
		return 0, true
	}
	least := p.bytes
	for _, h := range p.largest {
		least = min(least, h.Bytes)
	}
	return least, false
}

// quotaError is a registration refused for the client's quota limit
// (named, with its value), saying what the client holds, why, and what to
// do: fix, or deregister jobs when it holds some.
func (c *Controller) quotaError(key, limit, value, why, fix string) error {
	var cl client
	if p := c.clients[key]; p != nil {
		cl = *p
	}
	held := ""
	if cl.pends > 0 {
		held = fmt.Sprintf(", and %s registering hold %s and %s Mb/s", jobsText(cl.pends), sizeText(cl.pend.Bytes), mbpsText(cl.pend.Mbps))
	}
	kept := int64(0)
	if limit == "MaxBytesPerClient" {
		kept = c.persistedOfLocked(key)
	}
	if kept > 0 {
		held += fmt.Sprintf(", and its ended jobs' persisted values hold %s", sizeText(kept))
	}
	if limit == "MaxBytesPerClient" && cl.stored > cl.bytes+kept {
		held += fmt.Sprintf("; it stores %s", sizeText(cl.stored))
	}
	switch {
	case cl.jobs > 0 && fix != "":
		fix += ", or deregister some of its jobs"
	case cl.jobs > 0:
		fix = "deregister some of its jobs"
	case fix == "" && kept == 0:
		fix = "nothing this client registers fits the quota"
	}
	if kept > 0 {
		if fix != "" {
			fix += ", or "
		}
		fix += "delete persisted values of its ended jobs (pocket rm with each job's credential)"
	}
	return wire.Errorf(wire.CodeLimit, "%s holds %s allotted %s and %s Mb/s%s (%s %s): %s; %s",
		clientName(key), jobsText(cl.jobs), sizeText(cl.bytes), mbpsText(cl.mbps), held, limit, value, why, fix)
}

// mbpsText prints Mb/s to 12 significant digits: rounded to 6, 599.9999999
// left read "600 Mb/s left" in a refusal of 600 (a hostile trial); all 17
// show the subtraction's float residue (599.9999998999999).
func mbpsText(v float64) string {
	return strconv.FormatFloat(v, 'g', 12, 64)
}

// jobsText is "1 job" or "N jobs".
func jobsText(n int) string {
	if n == 1 {
		return "1 job"
	}
	return fmt.Sprintf("%d jobs", n)
}

// holdLocked adds a job's allotment (sign 1) to its client's, or takes
// it away (sign -1).
func (c *Controller) holdLocked(j *job, sign int) {
	cl := c.clientLocked(j.client)
	if cl == nil {
		return
	}
	cl.jobs += sign
	cl.bytes += int64(sign) * j.allocBytes
	cl.mbps += float64(sign) * j.allocMbps
	if cl.jobs == 0 { // no float residue once it holds nothing
		cl.bytes, cl.mbps = 0, 0
	}
}

// A pend holds a registering job's need from the autoscaler's
// reservation until the job is entered (enterJob) or refused
// (RegisterJobFor's unpend): against its client's quota, and against the
// nodes' room that other registrations' reservations see
// (Controller.registering). Without it, registrations at once each passed
// the quota before any was entered, and the autoscaler started nodes for
// needs the quota then refused; and a registration made while another's
// nodes started counted those nodes, and the room they were started to
// add to, as its own (a hostile trial).
type pend struct {
	client string // "" when the client has no quota
	need   Need   // against the client's quota
	held   Need   // against the room (Controller.registering)
	done   bool
}

// pendLocked holds need against the room reservations see and, when the
// client has one, its quota.
func (c *Controller) pendLocked(key string, need Need) *pend {
	held := need
	if need.Source == SizeDefault {
		held.Mbps = 0 // reserve starts no node for it: it takes the nodes there are
	}
	c.registrants++
	c.registering.Bytes = wire.SatAdd(c.registering.Bytes, held.Bytes)
	c.registering.Mbps += held.Mbps
	p := &pend{need: need, held: held}
	if key == "" || c.cfg.MaxBytesPerClient <= 0 && c.cfg.MaxMbpsPerClient <= 0 {
		return p
	}
	cl := c.clientLocked(key)
	cl.pends++
	cl.pend.Bytes += need.Bytes
	cl.pend.Mbps += need.Mbps
	p.client = key
	return p
}

// unpendLocked lets go of what p holds, once (p may be nil).
func (c *Controller) unpendLocked(p *pend) {
	if p == nil || p.done {
		return
	}
	p.done = true
	c.registrants--
	c.registering.Bytes -= p.held.Bytes
	c.registering.Mbps -= p.held.Mbps
	if c.registrants == 0 || c.registering.Bytes < 0 { // none held, or one saturated the sum
		c.registering.Bytes = 0
	}
	if c.registrants == 0 || c.registering.Mbps < 1e-6 { // no float residue
		c.registering.Mbps = 0
	}
	if p.client == "" {
		return
	}
	cl := c.clientLocked(p.client)
	cl.pends--
	cl.pend.Bytes -= p.need.Bytes
	cl.pend.Mbps -= p.need.Mbps
	if cl.pends == 0 {
		cl.pend = Need{}
	}
}

func (c *Controller) unpend(p *pend) {
	if p == nil {
		return
	}
	c.mu.Lock()
	c.unpendLocked(p)
	c.mu.Unlock()
}
