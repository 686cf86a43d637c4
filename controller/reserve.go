package controller

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/pocketstore/pocket/internal/units"
	"github.com/pocketstore/pocket/wire"
)

// Nodes for a registering job
//
// On an autoscaling cluster, RegisterJobFrom calls reserve before the job
// is sized and placed. reserve reads the job's need as sizing will
// (Policy.needFor: its hints, else its name's profile, else Pocket's
// default) and the active nodes' figures, and assumes nodes it starts are
// like the current ones: each with their mean bandwidth, and per tier kind
// their mean capacity of that kind.
//
// First it refuses, before any node starts, a job that max(MaxNodes,
// active) such nodes could not serve, so a refused registration starts
// nothing:
//
//   - a hinted bandwidth need beyond that many nodes' bandwidth at the
//     band's high (CodeLimit, naming the limit: nodes x Mb/s a node x
//     High): its allotment would count against every node the cluster
//     may have and keep them all, idle or not. A profile's need is not
//     refused (the job asked for nothing; it starts up to MaxNodes);
//   - a capacity need no tier of that many nodes could hold, by TierFor
//     over the projected spare (CodeNoSpace naming the need, the limit and
//     the largest tier's projected spare), or a job no tier may serve
//     (TierFor's CodeUnavailable). A profile's capacity that many nodes
//     could not hold is not refused: it is dropped (fitProfile), and the
//     job reserves none and starts no node for capacity.
//
// Then it starts, up to MaxNodes in all (counting those starting), the
// more of
//
//   - the nodes that carry the job's bandwidth need beyond the active
//     nodes' room under High (each node's High x bandwidth less its
//     counted load); none for a job Pocket's default sizes: it takes the
//     nodes there are;
//   - the nodes that hold its capacity need beyond the room under High of
//     a tier kind it may use (each node's High x capacity less the larger
//     of its bytes used and allotted there), the kind that needs the
//     fewest; capacity is a hard limit, so a job that fits only with new
//     nodes gets them instead of a refusal.
//
// It waits for them to register, at most StartTimeout.
//
// Registrations at once: from its reservation until it is entered or
// refused, a job's need is held against the room the next reservation
// sees (pend, Controller.registering), so each starts the nodes for its
// own need; and a registration that wants nodes waits for the node
// starts begun before it asked (awaitStarts), as they are all for needs
// it counted (another registration's or load's). Before, the second of two registrations counted the nodes
// the first was starting as its own and was placed at once on the nodes
// there were.
//
// A registration that still fails after its nodes started (another took
// their room meanwhile, or the new nodes are smaller than the current
// ones) leaves them idle: they carry no allotment, and scale-in drains
// them once Cooldown has passed, as any idle node.

// fleet is what the active nodes have and can take, for reserve.
type fleet struct {
	nodes int
	bw    float64 // their bandwidth, Mb/s
	load  float64 // counted against it (see counted), Mb/s
	room  float64 // left under the band's high, summed over nodes, Mb/s
	// held is the need of the registrations between their reservation
	// and their entry (Controller.registering): counted first, it takes
	// the room before a new job's need, and the nodes starting are for
	// it. Its bytes are taken from every tier kind's room, since a job
	// in flight's tier is not known here: at worst a node more starts,
	// and scale-in drains it.
	held   Need
	offers []TierOffer
	kinds  map[uint8]*kindFleet
}

// kindFleet is what the active nodes have of one tier kind.
type kindFleet struct {
	capacity int64   // bytes
	held     int64   // the larger of used and allotted, summed over nodes, bytes
	room     float64 // left under the band's high, summed over nodes, bytes
	mbps     float64 // bandwidth of the nodes that have it, Mb/s
}

// fleetLocked sums the active nodes' figures: counted load with measured
// figures averaged over smooth heartbeats, room under high (a fraction),
// the spare that sizing sees (tierOffersLocked), and per tier kind the
// capacity, its room under high and the bandwidth.
func (c *Controller) fleetLocked(high float64, smooth int) fleet {
	allocMbps, _ := c.allocationsLocked()
	f := fleet{offers: c.tierOffersLocked(), kinds: map[uint8]*kindFleet{kindDRAM: {}, kindNVMe: {}}}
	for _, n := range c.nodes {
		if n.state != wire.NodeActive {
			continue
		}
		bw := c.nodeMbps(n)
		load := counted(allocMbps[n.addr]/bw, c.measuredLocked(n, smooth)) * bw
		f.nodes++
		f.bw += bw
		f.load += load
		f.room += max(0, high*bw-load)
		for _, t := range n.tiers {
			if k := f.kinds[t.Kind]; k != nil {
				held := c.heldBytesLocked(n, &t)
				k.capacity = wire.SatAdd(k.capacity, t.CapacityBytes)
				k.held = wire.SatAdd(k.held, held)
				k.room += max(0, high*float64(t.CapacityBytes)-float64(held))
				k.mbps += c.tierMbps(t)
			}
		}
	}
	return f
}

// heldBytesLocked is what node n's tier t holds or has promised, in
// bytes: its used bytes, plus what each job placed on the tier there was
// allotted (its share of the job's capacity, byteShares) and has not used
// yet (its own bytes there, n's latest per-job figure). A node that does
// not count per job (jobLoads.reports false) counts the larger of its
// used and its allotted bytes, as every node did before: then one job
// past its allotment hid another's unused one (a new user's trial: a
// 64 MiB job holding 100 MiB beside an 8.8 MiB one holding nothing, and a
// 660 MiB registration placed on the node past its 256 MiB).
//
// The unused shares are summed once per node between its heartbeats and
// placements (nodeLoad.unused): it is called for every node on every
// registration and autoscaler tick, under the controller's lock, and
// summing them each time took a registration among 10,000 jobs on 64
// nodes from 49 us to hundreds of milliseconds (a review). A job the
// node's heartbeat does not list because it lists only the busiest
// (unlisted) counts its whole share: its bytes there are unknown.
func (c *Controller) heldBytesLocked(n *node, t *wire.TierStat) int64 {
	l := c.loads[n.addr]
	if l == nil {
		return t.UsedBytes
	}
	if !n.jobLoads.reports {
		return max(t.UsedBytes, l.bytes[t.Kind])
	}
	if !l.unusedOK {
		clear(l.unused)
		for j, share := range l.shares {
			l.unused[j.tier] += unusedShare(n, j, share)
		}
		l.unusedOK = true
	}
	return wire.SatAdd(t.UsedBytes, l.unused[t.Kind])
}

// unusedShare is what job j has not used of share, its share of its
// byte allotment on node n: share less its bytes there as n's latest
// heartbeat says, all of it when the heartbeat does not list j among the
// busiest (unlisted). Placement keeps a node's allotted shares within
// its spare capacity (at most wire.MaxNodeBytes, 2^50), so their sums do
// not overflow.
func unusedShare(n *node, j *job, share int64) int64 {
	var b int64
	if !unlisted(&n.jobLoads, j.id) {
		b = n.jobLoads.latest(j.id).Bytes
	}
	return max(0, share-b)
}

// tierMbps is a tier's bandwidth: as reported, else Policy.NodeMbps (as
// candidatesLocked counts it).
func (c *Controller) tierMbps(t wire.TierStat) float64 {
	if t.Mbps > 0 {
		return t.Mbps
	}
	return c.cfg.Policy.NodeMbps
}

// perNode is the mean bandwidth of an active node, Mb/s.
func (f *fleet) perNode() float64 { return f.bw / float64(f.nodes) }

// projected is the tier offers with k more nodes like the current ones:
// each adds the mean capacity and bandwidth per node of every tier kind
// the active nodes have.
func (f *fleet) projected(k int) []TierOffer {
	out := append([]TierOffer(nil), f.offers...)
	for i := range out {
		kf := f.kinds[uint8(out[i].Tier)]
		if k <= 0 || out[i].Nodes == 0 || kf == nil {
			continue
		}
		out[i].Nodes += k
		out[i].SpareMbps += float64(k) * kf.mbps / float64(f.nodes)
		out[i].SpareBytes = wire.SatAdd(out[i].SpareBytes, wire.SatBytes(float64(k)*float64(kf.capacity)/float64(f.nodes)))
	}
	return out
}

// reservation is what reserve does for a job: the nodes to start (before
// counting those starting already) and why.
type reservation struct {
	need   Need // the job's, as reserve counted it
	nodes  int  // active nodes
	want   int
	util   float64
	dim    string
	reason string
	pend   *pend // the need held against the client's quota meanwhile
}

// reservation reads the need of a job registering as name with hints h
// (sized from the profile under key when h gives no size, within the
// quota of client: quotaLocked) and the active nodes' figures under p's
// band, refuses a need that max(MaxNodes, active) nodes could not serve
// (see the top of the file) or the client's quota does not allow, and
// says how many nodes to start for it.
func (c *Controller) reservation(name, client, key string, h wire.JobHints, p *AutoscaleConfig) (reservation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	need, _, source := c.cfg.Policy.needFor(h, c.prof.learnedFor(key, h))
	need, err := c.quotaLocked(client, need) // refused, or cut, before any node starts
	if err != nil {
		return reservation{}, err
	}
	r, err := c.reservationLocked(name, need, source, p)
	if err == nil {
		r.pend = c.pendLocked(client, r.need)
	}
	return r, err
}

// reservationLocked is reservation for a need from source.
func (c *Controller) reservationLocked(name string, need Need, source string, p *AutoscaleConfig) (reservation, error) {
	f := c.fleetLocked(p.High, p.Smooth)
	if f.nodes == 0 {
		return reservation{need: need}, nil // nothing to assume new nodes like; sizing answers
	}
	f.held = c.registering
	most := max(p.MaxNodes, f.nodes)
	// A profile's capacity that most nodes could not hold is dropped, so
	// it neither refuses the job nor starts nodes (sizeJobLocked drops it
	// again when the nodes there are cannot hold it).
	need = fitProfile(need, f.projected(most-f.nodes), c.cfg.Prices)
	if err := f.refuse(name, need, source, most, p.High, c.cfg.Prices); err != nil {
		return reservation{}, err
	}
	r := reservation{need: need, nodes: f.nodes, dim: "network", util: (f.load + need.Mbps) / f.bw}
	var why []string
	if source != SizeDefault && need.Mbps+f.held.Mbps > f.room {
		r.want = int(math.Ceil((need.Mbps + f.held.Mbps - f.room) / (p.High * f.perNode())))
		why = append(why, fmt.Sprintf("%.0f Mb/s; the %d active node(s) have %.0f Mb/s of room under %.0f%%%s",
			need.Mbps, f.nodes, f.room, 100*p.High, heldText(f.held.Mbps, "%.0f Mb/s")))
	}
	if k, kind := f.forBytes(need, p.High, c.cfg.Prices); k > 0 {
		why = append(why, fmt.Sprintf("%d bytes; the %d active node(s) have %.0f bytes of %s room under %.0f%%%s",
			need.Bytes, f.nodes, f.kinds[kind].room, kindName(kind), 100*p.High, heldText(float64(f.held.Bytes), "%.0f bytes")))
		if k > r.want {
			r.want, r.dim = k, "capacity "+kindName(kind)
			kf := f.kinds[kind]
			r.util = float64(wire.SatAdd(kf.held, need.Bytes)) / float64(kf.capacity)
		}
	}
	if r.want > 0 {
		r.reason = fmt.Sprintf("job %s's %s need %s", name, source, strings.Join(why, ", and "))
	}
	return r, nil
}

// heldText is ", and registrations in flight need X of it first" (format
// f for X), or "" when they hold none.
func heldText(x float64, f string) string {
	if x <= 0 {
		return ""
	}
	return fmt.Sprintf(", and registrations in flight need "+f+" of it first", x)
}

// forBytes is how many nodes like the active ones it takes for a tier
// kind need may use to hold need.Bytes under high, and that kind, for the
// kind that takes the fewest (on a tie, the cheaper per GiB-hour of
// prices, as the placement picks: a new user's trial read "dram room" for
// a job then placed on NVMe); 0 when a kind holds it already, or when no
// new node would add any (sizing answers).
func (f *fleet) forBytes(need Need, high float64, prices Prices) (int, uint8) {
	if need.Bytes <= 0 {
		return 0, 0
	}
	best, bestKind := 0, uint8(0)
	want := float64(need.Bytes) + float64(f.held.Bytes)
	for _, kind := range []uint8{kindDRAM, kindNVMe} {
		kf := f.kinds[kind]
		if need.LatencySensitive && kind != kindDRAM {
			continue
		}
		if kf.room >= want {
			return 0, kind
		}
		per := high * float64(kf.capacity) / float64(f.nodes)
		if per <= 0 {
			continue
		}
		k := int(math.Ceil((want - kf.room) / per))
		if best == 0 || k < best || k == best && prices.GiBHour(wire.Tier(kind)) < prices.GiBHour(wire.Tier(bestKind)) {
			best, bestKind = k, kind
		}
	}
	return best, bestKind
}

// refuse is the error for a need that most nodes like the active ones
// could not serve (see the top of the file), nil when they could.
func (f *fleet) refuse(name string, need Need, source string, most int, high float64, prices Prices) error {
	if limit := high * float64(most) * f.perNode(); source == SizeHints && need.Mbps > limit {
		return wire.Errorf(wire.CodeLimit, "job %s's bandwidth hint of %.0f Mb/s is more than the cluster can carry: "+
			"%d nodes (the most the autoscaler runs) x %.0f Mb/s a node at the band's high of %.0f%% = %.0f Mb/s: "+
			"lower the hint (--peak-mbps, --lambdas) or raise the maximum (--max-nodes)",
			name, need.Mbps, most, f.perNode(), 100*high, limit)
	}
	offers := f.projected(most - f.nodes)
	_, err := TierFor(need, offers, prices)
	if errors.Is(err, wire.ErrNoSpace) {
		return noSpaceAt(name, need, offers, most)
	}
	return err
}

// noSpaceAt is the CodeNoSpace error for a capacity need that most nodes
// could not hold: the need, the limit and the largest eligible tier's
// projected spare.
func noSpaceAt(name string, need Need, offers []TierOffer, most int) error {
	var big TierOffer
	for _, o := range offers {
		if need.eligible(o) && o.SpareBytes >= big.SpareBytes {
			big = o
		}
	}
	what := "any tier"
	if need.LatencySensitive {
		what = "DRAM (the job is latency-sensitive)"
	}
	return wire.Errorf(wire.CodeNoSpace, "no tier can hold job %s: it needs %d bytes (%s) in %s; "+
		"%d nodes (the most the autoscaler runs) like the active ones would have %d bytes (%s) of %s spare: "+
		"%s, or raise the maximum (--max-nodes)",
		name, need.Bytes, units.FormatSize(need.Bytes), what, most, big.SpareBytes, units.FormatSize(big.SpareBytes), big.Tier, capacityAdvice(need))
}

// reserved is what reserve did for a registration: the need it holds
// (nil: none), why nodes it started did not come, and a note when the
// nodes the job's need wants are more than MaxNodes allows.
type reserved struct {
	pend   *pend
	failed []error
	capped string
}

// note is the registration's PlacementMap.Note from what reserve did: ""
// when the job got the nodes it wanted.
func (r reserved) note() string {
	failed := ""
	if len(r.failed) > 0 {
		failed = startFailureNote(r.failed)
	}
	return joinNotes(failed, r.capped)
}

// cappedNote is the reply's note for a job whose need wanted more nodes
// than the active ones (nodes) and MaxNodes (most) allow. It says nothing
// of the band: a hint is allotted past it, a profile or the default within
// it. Before, a cluster of 1 node that started 3 for a profiled job was
// said to be "at the autoscaler's maximum of 4 nodes" and the job placed
// "past the band's high" at exactly the band (a new user's trial).
func cappedNote(nodes, want, most int, reason string) string {
	if can := most - nodes; can > 0 {
		return fmt.Sprintf("its need wanted %d more nodes than the %d active (%s), and the autoscaler's maximum of %d nodes (--max-nodes) "+
			"lets it start %d: it is placed over at most %d nodes and may carry less than it asked for", want, nodes, reason, most, can, most)
	}
	return fmt.Sprintf("the cluster is at the autoscaler's maximum of %d nodes (--max-nodes) and its need wanted %d more (%s): "+
		"it is placed over the nodes there are and may carry less than it asked for", most, want, reason)
}

// reserve refuses a job that the cluster could not serve at MaxNodes, and
// otherwise starts the nodes its need calls for before it is placed and
// waits for them (see the top of the file). It returns the refusal; a
// start that fails is logged, and the job is placed over the nodes there
// are, as is a job whose need wants more nodes than MaxNodes allows
// (reserved.capped says so in its reply: before, nothing did, and a
// hostile trial saw 7,800 Mb/s allotted on a cluster of 6,000).
func (a *Autoscaler) reserve(name, client, key string, h wire.JobHints) (reserved, error) {
	r, err := a.c.reservation(name, client, key, h, &a.cfg)
	out := reserved{pend: r.pend}
	if err != nil || r.want <= 0 {
		return out, err
	}
	if r.nodes+r.want > a.cfg.MaxNodes {
		out.capped = cappedNote(r.nodes, r.want, a.cfg.MaxNodes, r.reason)
	}
	now := a.cfg.Now()
	a.mu.Lock()
	select {
	case <-a.stop:
		a.mu.Unlock()
		return out, nil
	default:
	}
	// The want counts the registrations in flight (fleet.held), so every
	// node starting now is one it counts on: it waits for them (not for
	// those begun later). Before, a registration made while another's
	// nodes started counted them as its own and was placed at once on
	// the nodes there were.
	deadline := time.Now().Add(a.cfg.StartTimeout)
	mark := a.seq
	k := min(r.want-a.starting, a.cfg.MaxNodes-r.nodes-a.starting)
	if k <= 0 {
		a.mu.Unlock()
		a.awaitStarts(mark, deadline)
		return out, nil
	}
	d := Decision{At: now, Action: ActionAdd, Count: k, Nodes: r.nodes, Util: r.util, Dim: r.dim, Reason: r.reason}
	first := a.beginLocked(k)
	mark = first + uint64(k) - 1
	a.lastOut, a.lastChange = now, now
	a.counts[ActionAdd]++
	a.record(d)
	a.wg.Add(k)
	a.mu.Unlock()
	a.log().Info("autoscale: add", "count", k, "from", r.nodes, "to", r.nodes+k, "reason", d.Reason)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed []error
	)
	for i := range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.startNode(first + uint64(i)); err != nil {
				mu.Lock()
				failed = append(failed, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	a.awaitStarts(mark, deadline) // the other starts it counted on
	out.failed = failed
	return out, nil
}
