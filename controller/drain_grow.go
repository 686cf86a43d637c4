package controller

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// Growing a job whose draining node's values have no room
//
// A drained node's values go to its jobs' other nodes (drain.go). When
// those have no room for them while an active node outside a job's map
// has, the drain's order gives the job that node, marked joining as in a
// growth of the job's own (elastic.go), in place of the draining one: it
// gets the draining node's weight (less when its room is short). After the
// drain the job's values are spread by weight over the joined node and the
// nodes the job kept: the draining node's values go to either, and the
// kept nodes move to the joined one the keys it now owns, as in any
// growth.
//
// When the job's other nodes would overflow (overflowLocked), the drain
// plans such growth (planDrainGrowthLocked), the job sending the most
// bytes to the overflowing node first, and checks the room again with the
// plan. The plan is carried out only when the drain goes ahead: a refused
// order changes nothing. The nodes kept take the drained values they own
// while they give the joining node its share, in no order: on the way a
// node kept can hold more than it holds before or after (about a third of
// the drained node's values more, for a job of two nodes), and answer puts
// "no space" while it does; the drainer tries such values again.
//
// Only at the order, and only for a job none of whose nodes drains yet:
// the job's map gains the node and marks the drained one draining at the
// same instant (both epochs are published as one), so no value has moved
// yet. Clients and nodes then handle both changes as they handle each
// alone: a key's old owner is its owner under the map without the joining
// node, its live owner under the map without the draining one
// (pocket/drain.go), and every value is at one of the two. A job grown
// while a drain runs would break that: a value already moved to a node
// kept, its owner under the map before, is at neither, and reads answered
// "not found" for it until that node moved it on (seen in a trial of this
// change). So a drain whose figures showed room at the order (a burst of
// puts since its nodes' last reports, slabs of other sizes) still waits
// for room past its deadline, as before.
//
// One node joins a job per drain: the job's change (job.move) ends only
// once the draining node has left its map, since a node draining from the
// cluster reports no moves (dataplane/agent/move.go). Before, a job's map
// never grew while a node of it drained: the drain was refused, or waited
// past its deadline for room, or with --lose-overflow lost the values,
// beside an empty node (a new user's trial: three 64 MiB nodes, a job of
// 96 MiB on two).

// joiner is a node planned to join a job's map during a drain, with the
// weight it joins at (relative to the map's weights before it joins).
type joiner struct {
	addr   string
	weight float64
}

// drainPlan maps the jobs a drain grows to the nodes that join them.
type drainPlan map[*job]joiner

// planDrainGrowthLocked plans the growth that keeps the values of the
// leaving nodes (x and the drains running) from filling a node past limit
// (a fraction of its tier's capacity): while a node would overflow, the
// job on x sending it the most bytes gains the active node outside its map
// with the most spare bytes, each node joining one job at most. The plan
// may leave an overflow when no job or node can take it.
func (c *Controller) planDrainGrowthLocked(x string, limit float64) drainPlan {
	plan := drainPlan{}
	tried := map[*job]bool{}
	taken := map[string]bool{}
	for {
		over := c.overflowLocked(x, limit, plan)
		if over == nil {
			return plan
		}
		j := c.heaviestSenderLocked(x, over.at.addr, plan, tried)
		if j == nil {
			return plan
		}
		tried[j] = true
		if jn, ok := c.drainJoinerLocked(j, x, limit, taken); ok {
			plan[j], taken[jn.addr] = jn, true
		}
	}
}

// growableLocked reports whether j's map may gain a node as x begins to
// drain: it is live, its map is not changing by a change of its own, no
// node of it is dead or drains already (see the top of this file), and it
// keeps an active node that is not leaving (a job whose only node leaves
// is adopted instead: adoptOrphansLocked).
func (c *Controller) growableLocked(j *job, leaving map[string]bool) bool {
	if j.revoked || j.move != nil || c.changingLocked(j) || c.deadMemberLocked(j) != "" {
		return false
	}
	return slices.ContainsFunc(j.nodes, func(mn wire.MapNode) bool {
		n, ok := c.nodes[mn.Addr]
		return ok && n.state == wire.NodeActive && !leaving[mn.Addr]
	})
}

// heaviestSenderLocked is the growable job (growableLocked) on x, not in
// plan nor tried, with to among its nodes, holding the most
// bytes on x; nil when there is none.
func (c *Controller) heaviestSenderLocked(x, to string, plan drainPlan, tried map[*job]bool) *job {
	l, n := c.loads[x], c.nodes[x]
	if l == nil || n == nil {
		return nil
	}
	leaving := c.leavingLocked(x)
	var best *job
	var bestBytes float64
	for j := range l.jobs {
		if _, planned := plan[j]; planned || tried[j] || !c.growableLocked(j, leaving) || !j.has(to) {
			continue
		}
		b := c.bytesOnLocked(j, x)
		if best == nil || b > bestBytes || b == bestBytes && j.id < best.id {
			best, bestBytes = j, b
		}
	}
	return best
}

// bytesOnLocked is j's bytes on the node at addr, a member of its map, by
// the node's latest figures (jobBytesLocked); 0 for a node without j's
// tier or unknown.
func (c *Controller) bytesOnLocked(j *job, addr string) float64 {
	n, ok := c.nodes[addr]
	if !ok {
		return 0
	}
	t := n.tier(j.tier)
	if t == nil {
		return 0
	}
	for _, mn := range j.nodes {
		if mn.Addr == addr {
			return c.jobBytesLocked(j, n, mn, float64(t.UsedBytes))
		}
	}
	return 0
}

// drainJoinerLocked picks the node to join j's map while x drains: the
// active node of j's tier outside the map, not leaving, not lost by j, not
// taken by another job of the plan, heard from in this run, with the most
// spare bytes under limit (candidatesUnderLocked). It joins at the weight
// of j's leaving nodes, or less: no more of j's bytes than seven eighths
// of its spare ones once the leaving nodes are gone. False when there is
// no such node.
func (c *Controller) drainJoinerLocked(j *job, x string, limit float64, taken map[string]bool) (joiner, bool) {
	leaving := c.leavingLocked(x)
	var total, wLeaving, wKept float64
	for _, mn := range j.nodes {
		n, ok := c.nodes[mn.Addr]
		if !ok {
			continue
		}
		total += c.bytesOnLocked(j, mn.Addr)
		switch {
		case leaving[mn.Addr]:
			wLeaving += mn.Weight
		case n.state == wire.NodeActive:
			wKept += mn.Weight
		}
	}
	if wLeaving <= 0 || wKept <= 0 {
		return joiner{}, false
	}
	var best *candidate
	cands := c.candidatesUnderLocked(j.tier, limit)
	for i := range cands {
		cd := &cands[i]
		if j.has(cd.addr) || leaving[cd.addr] || taken[cd.addr] || cd.unheard || c.lostByLocked(j, cd.addr) || cd.spareBytes <= 0 {
			continue
		}
		if best == nil || cd.spareBytes > best.spareBytes || cd.spareBytes == best.spareBytes && cd.addr < best.addr {
			best = cd
		}
	}
	if best == nil {
		return joiner{}, false
	}
	// Its share of the job's bytes once the leaving nodes are gone is
	// w/(wKept+w): at most its spare bytes, less an eighth, the most a
	// DRAM slab chunk adds to a value (dataplane/dram.go's fitsInline). A
	// hostile trial planned joiners full to the byte: their values found
	// no room and the drain was held past its deadline.
	w, room := wLeaving, float64(best.spareBytes)*7/8
	if total*w/(wKept+w) > room {
		w = room * wKept / (total - room)
	}
	return joiner{addr: best.addr, weight: w}, w > 0
}

// addGrownInflowLocked adds to in the bytes each node of j's map that
// stays, and the node jn joining it, takes or gives up once the leaving
// nodes are gone: under rendezvous hashing each ends with its weight's
// share of the job's bytes (those on every node of the map now), less what
// it holds of them now (a node giving values to the joining one takes a
// negative figure).
func (c *Controller) addGrownInflowLocked(j *job, jn joiner, leaving map[string]bool, in map[nodeKind]float64) {
	var total, wsum float64
	kept := []wire.MapNode{{Addr: jn.addr, Weight: jn.weight}}
	held := map[string]float64{}
	for _, mn := range j.nodes {
		n, ok := c.nodes[mn.Addr]
		if !ok {
			continue
		}
		b := c.bytesOnLocked(j, mn.Addr)
		total += b
		if !leaving[mn.Addr] && n.state == wire.NodeActive {
			kept, held[mn.Addr] = append(kept, mn), b
		}
	}
	for _, mn := range kept {
		wsum += mn.Weight
	}
	for _, mn := range kept {
		in[nodeKind{mn.Addr, j.tier}] += total*mn.Weight/wsum - held[mn.Addr]
	}
}

// growForDrainLocked carries out plan as x begins to drain: each job's map
// gains its node, joining (elastic.go's change), at a new epoch.
func (c *Controller) growForDrainLocked(plan drainPlan, x string, now time.Time) {
	jobs := make([]*job, 0, len(plan))
	for j := range plan {
		jobs = append(jobs, j)
	}
	sort.Slice(jobs, func(a, b int) bool { return jobs[a].id < jobs[b].id })
	for _, j := range jobs {
		jn := plan[j]
		nodes := append(slices.Clone(j.nodes), wire.MapNode{Addr: jn.addr, Weight: jn.weight, State: wire.NodeJoining, Since: wire.SinceNotYet})
		c.renormalizeLocked(j, nodes)
		c.bumpLocked(j)
		c.startMoveLocked(j, &move{epoch: j.epoch, addr: jn.addr, role: wire.NodeJoining, start: now, done: map[string]uint64{}})
		j.lastChange = now
		c.cfg.Logger.Info("controller: job map grows to take a draining node's values its other nodes have no room for",
			"job", j.id, "node", jn.addr, "draining", x, "nodes", len(nodes), "epoch", j.epoch)
	}
}

// receivingLocked is the first job (by id) for which the node at x takes
// values now, with what moves them ("" and nil when none): another node
// of its map draining from the cluster, a node leaving its map, or x
// joining it. A value is at its old owner or at its owner under the map
// without the leaving nodes, where readers look (pocket/drain.go); a
// value moved to x would move again if x left now, and be at neither
// place: a hostile trial drained the node a drain had just given a job,
// and acknowledged values read "not found" and deleted ones came back.
// So such a node is not drained until the change has ended (drain,
// scale-in).
func (c *Controller) receivingLocked(x string) (*job, string) {
	l := c.loads[x]
	if l == nil {
		return nil, ""
	}
	jobs := make([]*job, 0, len(l.jobs))
	for j := range l.jobs {
		jobs = append(jobs, j)
	}
	sort.Slice(jobs, func(a, b int) bool { return jobs[a].id < jobs[b].id })
	for _, j := range jobs {
		if mv := j.move; mv != nil && mv.role == wire.NodeJoining && mv.addr == x {
			return j, "it joins that job's map"
		}
		if mv := j.move; mv != nil && mv.role == wire.NodeDraining && mv.addr != x {
			return j, "node " + mv.addr + " leaves that job's map"
		}
		for _, mn := range j.nodes {
			if n, ok := c.nodes[mn.Addr]; ok && mn.Addr != x && n.state == wire.NodeDraining {
				return j, "node " + mn.Addr + " of that job's map drains"
			}
		}
	}
	return nil, ""
}

// receiving reports whether receivingLocked found a job.
func receiving(j *job, _ string) bool { return j != nil }

// growthNoteLocked says, for the refusal of x's drain, why the jobs
// sending the overflowing node over.at.addr their values gained no node
// with plan ("" when none did not).
func (c *Controller) growthNoteLocked(x string, over *overflow, plan drainPlan) string {
	l := c.loads[x]
	if l == nil || over == nil {
		return ""
	}
	leaving := c.leavingLocked(x)
	var notes []string
	for j := range l.jobs {
		// Only the jobs whose values would go there: of the overflowing
		// tier, holding bytes on x. Before, a job of the other tier
		// holding nothing was named (a new user's trial: "job n2" for the
		// NVMe values of n1, n2 a DRAM job with 0 B).
		if _, grows := plan[j]; grows || !j.has(over.at.addr) || j.tier != over.at.kind || c.bytesOnLocked(j, x) <= 0 {
			continue
		}
		why := "no active node outside its map has room for its share (a node joins one job per drain)"
		if !c.growableLocked(j, leaving) {
			why = "its map is changing, or a node of it drains or is dead, so it gains no node now"
		}
		notes = append(notes, fmt.Sprintf("job %s: %s", j.id, why))
	}
	if len(notes) == 0 {
		return ""
	}
	sort.Strings(notes)
	if len(notes) > 3 {
		notes = append(notes[:3], fmt.Sprintf("and %d more", len(notes)-3))
	}
	return " (" + strings.Join(notes, "; ") + ")"
}
