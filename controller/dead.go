package controller

import (
	"slices"
	"time"

	dataclient "github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/wire"
)

// Dead nodes leave the maps.
//
// A node not heard from for Config.DeadAfter is marked dead and stays in
// its jobs' maps, marked so: its keys keep their place and clients answer
// "unavailable" for them at once, in case it comes back. Once it has been
// dead for Config.DeadNodeGrace (DefaultDeadNodeGrace, 30 s; negative:
// never) it leaves the map of every job that has it (one epoch bump per
// job), and the map records it as lost (wire.LostNode: its address, its
// weight and the first epoch without it). The remaining nodes' weights are
// normalized to sum to 1, as sizing leaves them, and so the job's
// allotment spreads over them (when they cannot carry it, another node
// joins: refill.go); the lost node's weight is rescaled by the
// same factor, and so are those of nodes lost before. Rendezvous hashing
// is scale-free, so placing a key over the map's nodes and its lost nodes
// together still finds the node it had before any of them left: a client
// whose read answers "not found" asks that, and answers wire.CodeLost
// ("recompute it") instead when the owner was a lost node (package
// pocket, lost.go). Writes are placed over the remaining nodes only.
//
// A job whose every node is lost gets one active node of its tier (the one
// with the most spare bandwidth); its lost nodes' weights are raised so
// that they win nearly every key (lostDominance), because every value the
// job had was on them. With no such node the job keeps its dead node
// until one registers.
//
// A map lists at most wire.MaxLostNodes lost nodes, the oldest leave the
// list first; a key whose owner left the list answers "not found" again.
// A lost node rejoins a job that lost it (refill.go, adoption, drains)
// only once it is known to hold none of the job's data (job.lostClean: it
// restarted, or dropped the job's data by order and forgot the job).
//
// A lost node that comes back (registers again after a restart, or
// heartbeats again after a partition) is a new node: it is in no job's
// map and new jobs may be placed on it. Whatever it still holds of the
// jobs that lost it is stale (those jobs have written on without it), so
// the controller has it dropped at once (wire.OpDropJob with
// wire.FlagPrefix: the node revokes the job locally, and its values,
// persistent ones too, go; cleanDueLocked). Until the drop is done, its job table holds
// such a job at the job's current epoch (changes.go), so a client still
// routing by a map from before the loss is refused (stale epoch), fetches
// the map and goes elsewhere.
//
// The controller's own refusals are no sign of a node's death: while
// connection limits refuse or evict connections (server.go), a node's
// heartbeats may be among the refused (node connections are outside
// MaxConns, but a node redialling through a flood may still lose its
// probation slot). So a dead node whose silence began before the latest
// refusal leaves the maps only once DeadNodeGrace has passed since that
// refusal as well: a node is not lost, and its data is not dropped when
// it returns, while the controller is refusing connections. A node that
// really died during a sustained flood keeps its place, marked dead
// (clients answer "unavailable" for its keys), until the flood ends.
//
// The lost nodes are saved with the job records (state.Job.Lost), so a
// restarted controller keeps answering "lost" for them. A draining node
// that dies, or whose drain deadline passes with data unmoved, is recorded
// as lost at once, without the grace (drain.go: retireLocked).
//
// A node cut off from the controller but not from clients, or frozen
// (SIGSTOP, a stalled VM) with requests queued in its sockets, would
// otherwise serve clients with older maps until it heard from the
// controller again, and acknowledge writes dropped with the rest when it
// did. Every ack gives the node a lease (leaseLocked) within which it
// is not taken for lost; past most of it the node refuses its jobs'
// requests until an ack renews it (dataplane/lease.go).

// leaseLocked is node n's lease (wire.NodeAck.Lease): the least silence
// after which this controller may take it for lost. A node silent for
// DeadAfter is marked dead at the next sweep and leaves the maps once dead
// for DeadNodeGrace (evictDeadLocked), so DeadAfter plus the grace (none
// when the grace is negative: the node is never lost); a draining node
// that dies is retired as lost at once (drain.go), so DeadAfter alone.
// Both count from the node's last heartbeat received, which is after the
// node sent it. The node serves its jobs only within the lease
// (dataplane/lease.go).
func (c *Controller) leaseLocked(n *node) time.Duration {
	switch {
	case n.state == wire.NodeDraining:
		return c.cfg.DeadAfter
	case c.cfg.DeadNodeGrace < 0:
		return 0
	}
	return c.cfg.DeadAfter + c.cfg.DeadNodeGrace
}

// aliveLocked marks a dead node that is heard from again alive: draining
// again if its drain is still on (n.drain), else active. Before, it came
// back active with its drain still on: it took new puts as an active node
// and was retired as lost at the drain's deadline with them (a hostile
// trial: 8,984 of 25,604 acknowledged puts after a 4.5 s freeze), and a
// drain whose move pass it interrupted left moved values routed back to
// it, where they read "not found".
func (c *Controller) aliveLocked(n *node, why string) {
	if n.drain != nil {
		c.setStateLocked(n, wire.NodeDraining, why+", still draining")
		return
	}
	c.setStateLocked(n, wire.NodeActive, why)
}

// grantLeaseLocked is leaseLocked for an ack to n now, which it records:
// the node serves within the longest lease any ack gave it (it may not
// have read a shorter, newer one: a node frozen as its drain began), so
// n.leaseEnd keeps the latest end.
func (c *Controller) grantLeaseLocked(n *node) time.Duration {
	l := c.leaseLocked(n)
	if end := time.Now().Add(l); end.After(n.leaseEnd) {
		n.leaseEnd = end
	}
	return l
}

// DefaultDeadNodeGrace is Config.DeadNodeGrace's default.
const DefaultDeadNodeGrace = 30 * time.Second

// lostDominance is how much heavier than the adopted node the lost nodes
// of a job that lost every node weigh together: the adopted node then
// wins about one key in a billion of those placed over both.
const lostDominance = 1e9

// lostDrop is a drop order for the data a returned node holds of a job
// that lost it, waiting for the save of the loss (Controller.lostDrops).
type lostDrop struct {
	addr, job string
}

// evictDeadLocked removes every node dead for longer than the grace from
// the maps of its jobs.
func (c *Controller) evictDeadLocked(now time.Time) {
	g := c.cfg.DeadNodeGrace
	if g < 0 {
		return
	}
	held := c.lossHeldLocked(now, g)
	refused := time.Unix(0, c.srv.lastRefusal.Load())
	for addr, n := range c.nodes {
		if n.state != wire.NodeDead || now.Sub(n.deadSince) <= g || !c.inAnyJobLocked(addr) {
			continue
		}
		if held {
			c.postponedLossLocked(addr, now, time.Minute, "controller: dead node kept in the maps: every node is dead (or the first was heard again "+
				"within the grace), and a controller that hears from none may be cut off itself (a partition, an --advertise address the nodes "+
				"cannot reach, another cluster's CA)")
			continue
		}
		if refused.After(n.lastSeen) && now.Sub(refused) <= g {
			c.postponedLossLocked(addr, now, time.Second, "controller: dead node kept in the maps: connections were refused since it was last heard, its heartbeats may have been among them",
				"last_refusal_ago", now.Sub(refused).Round(time.Millisecond))
			continue
		}
		var jobs []*job
		for j := range c.loads[addr].jobs {
			jobs = append(jobs, j)
		}
		left := 0
		for _, j := range jobs {
			if c.loseNodeLocked(j, addr, false) {
				left++
			}
		}
		if left > 0 { // the jobs with nowhere else to go are tried again at every sweep, quietly
			c.cfg.Logger.Warn("controller: dead node left the maps; its values are lost", "node", addr,
				"dead_for", now.Sub(n.deadSince).Round(time.Millisecond), "jobs", left, "kept_for_lack_of_nodes", len(jobs)-left)
		}
	}
}

// postponedLossLocked logs msg, that the dead node addr keeps its place,
// unless a log of a postponed loss was made within every.
func (c *Controller) postponedLossLocked(addr string, now time.Time, every time.Duration, msg string, attrs ...any) {
	last := c.srv.lossLog.Load()
	if now.UnixNano()-last < int64(every) || !c.srv.lossLog.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	c.cfg.Logger.Warn(msg, append([]any{"node", addr}, attrs...)...)
}

// contact is what a controller has heard of its nodes since New: the
// nodes it restored from the state that were alive there and held jobs'
// data, whether any of them has been heard from, and when the first node
// was heard again after a time when every node was dead.
type contact struct {
	started       time.Time           // New
	restored      map[string]struct{} // the restored nodes saved alive and in a job's map
	heardRestored bool                // one of them has registered or heartbeated since
	regained      time.Time           // the first node heard while every node was dead, latest
}

func (k *contact) restoredLocked(addr string) {
	if k.restored == nil {
		k.restored = map[string]struct{}{}
	}
	k.restored[addr] = struct{}{}
}

// heardLocked notes a registration or heartbeat from the node at addr,
// before its state changes: dead (or new) says it was not alive until
// now. A node heard while none was alive regains contact: the other dead
// nodes get another grace from now (lossHeldLocked), since a partition
// that ends lets the nodes back one heartbeat apart (a hostile trial lost
// the two nodes that came back 0.5 s after the first: 1,114 values).
func (c *Controller) heardLocked(addr string, dead bool, now time.Time) {
	if _, ok := c.contact.restored[addr]; ok {
		c.contact.heardRestored = true
	}
	if dead && len(c.nodes) > 0 && !c.anyAliveLocked() {
		c.contact.regained = now
	}
}

// anyAliveLocked reports whether any registered node is not dead.
func (c *Controller) anyAliveLocked() bool {
	for _, n := range c.nodes {
		if n.state != wire.NodeDead {
			return true
		}
	}
	return false
}

// lossHeldLocked reports whether a dead node's values are not to be
// declared lost now: while every node is dead, and for wait after the
// first node was heard again (contact.regained). With no node to hear
// from, the controller cannot tell its own silence (a partition, a wrong
// --advertise address, another cluster's CA) from theirs. Before, a
// controller elected with an --advertise address the nodes could not
// reach marked all three healthy nodes dead, then lost two of them: 553
// of 825 acknowledged values (a new user's trial). When every node died
// in fact, their keys answer "unavailable" instead of "lost" until a node
// is heard again, and for wait after.
func (c *Controller) lossHeldLocked(now time.Time, wait time.Duration) bool {
	return !c.anyAliveLocked() || now.Sub(c.contact.regained) <= wait
}

// restoreWitnessesLocked notes the restored nodes whose silence makes the
// controller deaf (Deaf): those saved alive that hold a job's data, or,
// when no job's map names an alive node (no job yet), every node saved
// alive. Before, a cluster without jobs gave none, and a hostile trial's
// controller that no node could reach kept the leadership with a healthy
// standby idle (161 s observed, no end).
func (c *Controller) restoreWitnessesLocked() {
	var alive []string
	for addr, n := range c.nodes {
		if n.state == wire.NodeDead {
			continue
		}
		alive = append(alive, addr)
		if c.inAnyJobLocked(addr) {
			c.contact.restoredLocked(addr)
		}
	}
	if len(c.contact.restored) > 0 {
		return
	}
	for _, addr := range alive {
		c.contact.restoredLocked(addr)
	}
}

// Deaf reports whether the controller restored nodes from the state that
// were alive there and held jobs' data (with no job, alive:
// restoreWitnessesLocked), and has heard from none of them
// since, while all of them are dead (or gone) once the restore grace and
// DeadAfter have passed: the nodes cannot reach it (its --advertise
// address or its CA are not theirs), it is cut off from them, or they all
// died since the last term's save. HA.Run resigns such a term so that
// another controller can lead. Other nodes do not count: a hostile
// trial's controller with another CA, given a node of its own, kept its
// term and lost every value of the cluster's nodes (that node, new, or
// restored in its next term). Nodes saved dead do not either: the term
// before could not hear them, so the silence is theirs, and a controller
// that takes replacement nodes keeps its term (a second trial: a lone
// controller resigned at every term, no leader for minutes).
func (c *Controller) Deaf() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := &c.contact
	if len(k.restored) == 0 || k.heardRestored || time.Since(k.started) <= restoreGrace+c.cfg.DeadAfter {
		return false
	}
	for addr := range k.restored {
		if n, ok := c.nodes[addr]; ok && n.state != wire.NodeDead {
			return false
		}
	}
	return true
}

// loseNodeLocked takes addr out of j's map and records it as lost. It
// reports false, and changes nothing, when the job has no other node and
// none can be given to it. restarted says addr is active again and empty
// (its process restarted, restartedLocked): the job may then keep it as
// a new node when it has no other.
func (c *Controller) loseNodeLocked(j *job, addr string, restarted bool) bool {
	delete(j.lostClean, addr) // lost now, it may hold the job's data (restartedLocked says when not)
	var w float64
	kept := make([]wire.MapNode, 0, len(j.nodes))
	for _, mn := range j.nodes {
		if mn.Addr == addr {
			w = mn.Weight
			continue
		}
		kept = append(kept, mn)
	}
	lost := append(append([]wire.LostNode(nil), j.lost...), wire.LostNode{Addr: addr, Weight: w, Epoch: j.epoch + 1})
	if sum := weightSum(kept); sum > 0 {
		scaleLost(lost, 1/sum) // lost is a copy: the scale of kept once normalized
		normalize(kept)
	} else {
		adopted, ok := c.adoptLostLocked(j, addr, restarted)
		if !ok {
			return false
		}
		for _, a := range adopted {
			delete(j.lostClean, a.Addr) // it holds the job's data from now on
		}
		kept = adopted
		var lsum float64
		for _, l := range lost {
			lsum += l.Weight
		}
		if lsum > 0 {
			scaleLost(lost, lostDominance/lsum)
		}
	}
	// A node that took a draining node's share holds what it will hold
	// from the loss's epoch once no node drains (the lost one may have).
	c.settleDrainedLocked(j, kept, j.epoch+1)
	c.setLostLocked(j, lost)
	c.placeLocked(j, kept)
	c.bumpLocked(j)
	j.lostOne()
	j.lostAt = time.Now()
	return true
}

// restartedLocked handles a known node that registers with another
// incarnation than before (wire.NodeRegister), confirmed by the node
// serving at its address (incarnation.go): its process restarted, and
// it is empty, whatever the controller thought of it (alive within
// DeadAfter, or dead within the grace). Every job that has
// it in its map loses it at once, as a node dead past the grace does: its
// keys answer wire.CodeLost ("recompute it") instead of "not found", and
// writes go to the job's other nodes; the node itself serves on as a new
// one. Before, the restarted node kept its place and the job's values on
// it read as never written.
func (c *Controller) restartedLocked(n *node) {
	c.endedLoseLocked(n.addr, "the node restarted")
	if n.drain != nil {
		// Its drain ends here: what the old process had not moved is
		// lost (its jobs lose it below), and the new one is a fresh,
		// active node. Before, it came back draining or active with the
		// old drain on, and was retired at its deadline with what it had
		// taken since, or reported 'moved all its data' (a new user's
		// trial: 105 of 200, and 63 of 127, acknowledged values lost).
		c.cfg.Logger.Warn("controller: node restarted while draining; what it had not moved is lost", "node", n.addr)
		end := wire.RetiredNode{Addr: n.addr, At: time.Now(), Why: "restarted while draining", Lost: true}
		c.drainEndedLocked(end)
		n.drain, n.drainEnd = nil, &end
		c.dirtyNodesLocked()
		c.setStateLocked(n, wire.NodeActive, "restarted while draining")
	}
	if n.state == wire.NodeDead {
		c.aliveLocked(n, "registered again")
	}
	var jobs []*job
	if l := c.loads[n.addr]; l != nil {
		for j := range l.jobs {
			jobs = append(jobs, j)
		}
	}
	lost := 0
	for _, j := range jobs {
		if c.loseNodeLocked(j, n.addr, true) {
			lost++
		}
	}
	// Every job that lists it lost, now or before (also before a
	// controller restart), may take it back: its process restarted, so it
	// holds none of their data.
	for j := range c.lostFrom[n.addr] {
		c.cleanLostLocked(j, n.addr)
	}
	if len(jobs) > 0 {
		c.cfg.Logger.Warn("controller: node restarted; its jobs lost its values", "node", n.addr, "jobs", lost,
			"kept_for_lack_of_nodes", len(jobs)-lost)
	}
}

// lostOne counts a node that left j's map by a drain from the cluster or
// as lost: growth's count, the shrink floor of a job sized without hints,
// falls by one, so the job does not shed the node that grew in the place
// of one it was sized with as well.
func (j *job) lostOne() { j.grown = max(0, j.grown-1) }

// renormalizeLocked makes nodes j's map, their weights scaled to sum to
// 1, and scales j's lost nodes' weights by the same factor, so they stay
// on the scale of the map's weights: placement over the map and its lost
// nodes together (package pocket, lost.go) still finds each key's node
// from before any of them left. Every change of a map's nodes goes
// through it (a grow, a change's end, a node retired) but the loss of a
// node, which scales the lost list it extends itself (loseNodeLocked).
func (c *Controller) renormalizeLocked(j *job, nodes []wire.MapNode) {
	if sum := weightSum(nodes); sum > 0 && sum != 1 && len(j.lost) > 0 {
		lost := slices.Clone(j.lost)
		scaleLost(lost, 1/sum)
		c.setLostLocked(j, lost)
	}
	normalize(nodes)
	c.placeLocked(j, nodes)
}

// weightSum is the sum of the nodes' weights.
func weightSum(nodes []wire.MapNode) float64 {
	var sum float64
	for _, mn := range nodes {
		sum += mn.Weight
	}
	return sum
}

// scaleLost multiplies the lost nodes' weights by f.
func scaleLost(lost []wire.LostNode, f float64) {
	for i := range lost {
		lost[i].Weight *= f
	}
}

// adoptLostLocked picks the active nodes of j's tier that j has not lost,
// other than losing (the node j is losing now, not yet in its lost list:
// a node that restarted at its address is active again), as many as j's
// allotment needs, weighted as a registration places a job
// (Policy.sizeNeed): before, one node alone (weight 1), so a job of three
// nodes that lost them all (a `pocket up` restarted on its data
// directory, its nodes back as new processes) came back on one node and
// never spread again (a new user's trial: "gets at most 6316 of its 18000
// Mb/s"). When every such node is one j lost before, it takes those known
// to hold none of j's data (j.lostClean: they restarted since), and
// failing that losing itself when it restarted (losingRestarted): such a
// node stays (or goes) in the lost list, so that its old keys answer lost
// and name it. Every adopted node holds its share from the epoch of this
// loss (MapNode.Since), which leaves it out of the placements that find
// lost nodes. Before, the first kind of job kept its dead node for good
// (a hostile trial: "node ... is dead" for 75 s and more beside an idle
// active node), and a job whose only node restarted recorded no loss, so
// its old keys read "not found", not lost. A lost node that came back
// with its data is not taken when told to drop it: the drop revokes the
// job in the node's table, which a later map does not undo (a hostile
// trial: every call then "token revoked", and persisted old values read
// again); once the node has forgotten the job, keeping none of its
// values, it is (cleanDueLocked). A node restored from the state and not heard from since is not
// taken either (adoptableLocked).
func (c *Controller) adoptLostLocked(j *job, losing string, losingRestarted bool) ([]wire.MapNode, bool) {
	cands := c.candidatesLocked(j.tier)
	pick := c.adoptableLocked(j, cands, losing, false)
	if len(pick) == 0 {
		pick = c.adoptableLocked(j, cands, losing, true)
	}
	if len(pick) == 0 && losingRestarted {
		if i := slices.IndexFunc(cands, func(cd candidate) bool { return cd.addr == losing }); i >= 0 {
			pick = cands[i : i+1]
		}
	}
	if len(pick) == 0 {
		return nil, false
	}
	p := c.cfg.Policy.sizeNeed(pick, Need{Mbps: j.allocMbps, Bytes: j.allocBytes}, 1)
	addrs := make([]string, len(p.nodes))
	for i := range p.nodes {
		// It never held what the job's lost nodes held: it holds its
		// share from the epoch that records the loss (LostNode.Epoch).
		p.nodes[i].Since = j.epoch + 1
		addrs[i] = p.nodes[i].Addr
	}
	c.cfg.Logger.Info("controller: job lost its every node and gets others", "job", j.id, "nodes", addrs,
		"lost_before", c.lostByLocked(j, addrs[0]), "restarted", addrs[0] == losing)
	return p.nodes, true
}

// adoptableLocked is the candidates adoptLostLocked may take, other than
// losing: the nodes j has not lost, or (lost) those it lost that hold
// none of its data; never a node restored from the state and not heard
// from since: it may have stopped with the controller. Before, a
// restarted `pocket up` whose nodes came back at their addresses (each
// restarted, so each job lost its node) moved every such job onto an
// earlier run's node that was not running, and their puts answered "node
// is dead" for 50 s beside two live nodes (a new user's trial).
func (c *Controller) adoptableLocked(j *job, cands []candidate, losing string, lost bool) []candidate {
	var out []candidate
	for _, cd := range cands {
		if cd.addr == losing || cd.unheard || c.lostByLocked(j, cd.addr) != lost || lost && !j.lostClean[cd.addr] {
			continue
		}
		out = append(out, cd)
	}
	return out
}

// cleanLostLocked notes that addr, a node j lost, holds none of j's data:
// its process restarted since. A node of j's map (taken back) holds j's
// data and is not marked.
func (c *Controller) cleanLostLocked(j *job, addr string) {
	if !c.lostByLocked(j, addr) || j.has(addr) {
		return
	}
	if j.lostClean == nil {
		j.lostClean = map[string]bool{}
	}
	if !j.lostClean[addr] {
		j.lostClean[addr] = true
		c.dirtyJobLocked(j.id) // kept with the job: a restarted controller knows it
	}
}

// setLostLocked replaces j's lost list, keeping the newest
// wire.MaxLostNodes, and keeps the index of lost nodes (lostFrom) in step.
func (c *Controller) setLostLocked(j *job, lost []wire.LostNode) {
	if over := len(lost) - wire.MaxLostNodes; over > 0 {
		lost = lost[over:]
	}
	c.unindexLostLocked(j)
	j.lost = lost
	for _, l := range j.lost {
		m := c.lostFrom[l.Addr]
		if m == nil {
			m = map[*job]struct{}{}
			c.lostFrom[l.Addr] = m
		}
		m[j] = struct{}{}
	}
	c.dirtyJobLocked(j.id)
}

// unindexLostLocked removes j from the index of lost nodes (when it is
// deregistered, or before its list changes).
func (c *Controller) unindexLostLocked(j *job) {
	for _, l := range j.lost {
		if m := c.lostFrom[l.Addr]; m != nil {
			delete(m, j)
			if len(m) == 0 {
				delete(c.lostFrom, l.Addr)
			}
		}
	}
}

// lostByLocked reports whether j lists addr as lost.
func (c *Controller) lostByLocked(j *job, addr string) bool {
	_, ok := c.lostFrom[addr][j]
	return ok
}

// returnedLocked notes that the node at addr is back (registered or
// heartbeating again, or first heard from after a controller restart):
// the data it holds of the jobs that lost it is to be dropped. The orders
// wait for the save of the losses (afterSave, persist.go): a node told to
// drop a job's data while the store still holds it in the job's map
// would, after a restart, be routed the job's keys and answer them
// revoked, then not found, instead of lost. A job that knows the node
// holds none of its data (lostClean) sends none: the order would revoke
// the job there, and the job may take the node back meanwhile.
func (c *Controller) returnedLocked(addr string) {
	for j := range c.lostFrom[addr] {
		if j.has(addr) || j.lostClean[addr] {
			continue // adopted again (adoptLostLocked): what it holds is the job's; or it holds none
		}
		c.lostDrops = append(c.lostDrops, lostDrop{addr: addr, job: j.id})
		c.st.waiting.Store(true)
	}
}

// cleanReturnLocked handles a new process registering at the address of a
// node a drain retired as lost (goneLocked): it restarted, empty, so the
// jobs that lost the node may take it back (cleanLostLocked). Before, it
// was taken as an unknown node that might hold stale data, and a job
// short of a node stayed so beside it ("tier full" next to an empty node,
// a new user's trial).
func (c *Controller) cleanReturnLocked(addr string) {
	for j := range c.lostFrom[addr] {
		c.cleanLostLocked(j, addr)
	}
}

// unknownReturnLocked handles a node registering at an address the
// controller does not know but jobs list as lost: it was forgotten
// (Config.ForgetAfter) while dead, and is back, with the data it held then
// (a frozen process) or empty (a new one): which, the controller no longer
// knows. So it is told to drop what it holds of those jobs, as a returned
// node is (returnedLocked), and is no longer taken for one known to hold
// none of their data (job.lostClean), which adoption, drains and refills
// take back: the drop revokes the job on the node. Before, a node frozen
// past ForgetAfter kept the stale data of the jobs that lost it (a new
// user's trial: 29 and 65 MiB) until they ended.
func (c *Controller) unknownReturnLocked(addr string) {
	for j := range c.lostFrom[addr] {
		if j.lostClean[addr] {
			delete(j.lostClean, addr)
			c.dirtyJobLocked(j.id)
		}
	}
	c.returnedLocked(addr)
}

// sendLostDrops sends returned nodes' drop orders, on a goroutine of
// their own: the node drops the jobs' data now, or, if the order does not
// reach it, when the job ends. Call it without c.mu, once the losses are
// saved (afterSave.run). The order drops the job's persistent values
// there too (DropLostJobAt): the job lost them, its keys there answer
// lost, and a node taken back with them would serve them again. A node
// that answers it keeps none of the job's data (Dropped.Kept) holds none
// of it once it has forgotten the job, Config.RevokeLinger later
// (cleanDueLocked).
func (c *Controller) sendLostDrops(drops []lostDrop) {
	c.srv.goroutine(func() {
		cl := dataclient.New(dataclient.Options{ConnsPerNode: 1, DialTimeout: c.cfg.DropTimeout})
		defer cl.Close()
		for _, d := range drops {
			inc, ok := c.lostIncarnation(d)
			if !ok {
				continue
			}
			ctx, cancel := c.closingContext()
			res, err := c.dropOne(ctx, cl, d.addr, d.job, token.OrderKey(c.cfg.Secret, []byte(d.job)), true)
			cancel()
			ended := c.endedNow(d.job)
			switch {
			case err != nil && ended:
				c.cfg.Logger.Info("controller: returned node did not drop the persisted values of an ended job that lost it; the order goes again while it reports them",
					"node", d.addr, "job", d.job, "err", err)
				continue
			case err != nil:
				c.cfg.Logger.Info("controller: returned node did not drop its stale data of a job that lost it; it drops it when the job ends",
					"node", d.addr, "job", d.job, "err", err)
				continue
			case ended:
				c.cfg.Logger.Info("controller: returned node dropped the persisted values of an ended job that lost it",
					"node", d.addr, "job", d.job, "values", res.Values, "bytes", res.Freed, "kept", res.Kept)
				if res.Kept == 0 {
					c.noteEndedDropped(d.job, d.addr, inc)
				}
				continue
			}
			switch {
			case res.Kept > 0:
				// The order drops persistent values too: puts that landed
				// meanwhile, or a node that kept them anyway.
				c.cfg.Logger.Warn("controller: returned node dropped its stale data of a job that lost it but still holds some; the job does not take it back",
					"node", d.addr, "job", d.job, "values", res.Values, "bytes", res.Freed, "kept", res.Kept)
			case inc == 0:
				c.cfg.Logger.Info("controller: returned node dropped its stale data of a job that lost it",
					"node", d.addr, "job", d.job, "values", res.Values, "bytes", res.Freed)
			default:
				c.cfg.Logger.Info("controller: returned node dropped its stale data of a job that lost it; the job may take it back once the node has forgotten the job",
					"node", d.addr, "job", d.job, "values", res.Values, "bytes", res.Freed, "after", c.cfg.RevokeLinger+2*c.cfg.HeartbeatInterval)
				c.noteDroppedLost(d, inc)
			}
		}
	})
}

// cleanDue is when a returned node that dropped a job's data by order
// (sendLostDrops) will have forgotten the job, and the incarnation that
// dropped it.
type cleanDue struct {
	inc uint64
	at  time.Time
}

// lostIncarnation reports whether drop order d is still to be sent (its
// job is not live, and the node drops what it holds of an ended job; or
// it is and has not adopted the node again since the order was queued),
// and the incarnation the node registered with (0: not known; dropOne
// asks the node).
func (c *Controller) lostIncarnation(d lostDrop) (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if j := c.jobs[d.job]; j != nil && j.has(d.addr) {
		return 0, false
	}
	if n := c.nodes[d.addr]; n != nil {
		return n.incarnation, true
	}
	return 0, true
}

// endedNow reports whether job is not live: it ended, and a drop order to
// a node it lost is for its persisted values (ended_lost.go).
func (c *Controller) endedNow(job string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.jobs[job] == nil
}

// noteDroppedLost records that the node of d, incarnation inc, dropped
// d's job's data by order and keeps none: it refuses the job until it
// forgets it, RevokeLinger from now, and its next heartbeat ack after
// that sweeps what a late put may have stored (dataplane sweepRevoked);
// two heartbeat intervals later the job may take it back.
func (c *Controller) noteDroppedLost(d lostDrop, inc uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cleanDue == nil {
		c.cleanDue = map[lostDrop]cleanDue{}
	}
	c.cleanDue[d] = cleanDue{inc: inc, at: time.Now().Add(c.cfg.RevokeLinger + 2*c.cfg.HeartbeatInterval)}
}

// cleanDueLocked marks clean (cleanLostLocked) the returned nodes that
// dropped a job's data by order and have forgotten the job since, as long
// as the same process runs at the address: the job may take them back
// (refill.go, adoption, drains). Before, only a node that restarted was
// taken back; a node frozen past its lease, resumed and told to drop the
// job's stale data stayed out of the job's map, and a new user's job of
// 96 MiB on the one 64 MiB node left answered "tier full" beside it.
// The waits are kept in memory: a controller restarted in the meantime
// orders the drop again when it first hears from the node (heartbeat).
func (c *Controller) cleanDueLocked(now time.Time) {
	for d, due := range c.cleanDue {
		if now.Before(due.at) {
			continue
		}
		delete(c.cleanDue, d)
		n, j := c.nodes[d.addr], c.jobs[d.job]
		if n == nil || n.incarnation != due.inc || j == nil || j.has(d.addr) || !c.lostByLocked(j, d.addr) {
			continue
		}
		if !j.lostClean[d.addr] {
			c.cfg.Logger.Info("controller: a node that dropped a job's stale data has forgotten the job; the job may take it back",
				"node", d.addr, "job", d.job)
		}
		c.cleanLostLocked(j, d.addr)
	}
}
