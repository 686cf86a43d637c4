package controller

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sort"

	"github.com/pocketstore/pocket/internal/units"
	"github.com/pocketstore/pocket/wire"
)

// candidate is a node that can take a job, with its spare resources on the
// job's tier (see the package doc, step 3).
type candidate struct {
	addr       string
	spareMbps  float64
	spareBytes int64
	// wholeBytes is the node's spare bytes up to its tier's whole
	// capacity, where spareBytes may be counted under the band
	// (candidatesUnderLocked); 0 reads as spareBytes.
	wholeBytes int64
	// unheard: restored from the state and not heard from in this run
	// (node.unheard): it may not be running.
	unheard bool
}

// whole is c's spare bytes up to its tier's whole capacity: what no share
// of a job may pass.
func (c *candidate) whole() int64 { return max(c.wholeBytes, c.spareBytes) }

// plan is the outcome of sizing: the chosen nodes with normalized weights,
// and the demand allotted to the job.
type plan struct {
	nodes      []wire.MapNode
	mbps       float64
	bytes      int64
	throughput bool // throughput-bound (else capacity-bound)
	// unreserved is the capacity the job's name's profile asked that no
	// tier had spare (fitProfile), bytes: the job reserves none.
	unreserved int64
}

// demand turns hints into bandwidth and capacity needs (step 2). noHints
// reports that no size hint was given at all.
func (p *Policy) demand(h wire.JobHints) (mbps float64, bytes int64, noHints bool) {
	mbps = h.PeakMbps
	if mbps == 0 && h.Lambdas > 0 {
		mbps = float64(h.Lambdas) * p.PerLambdaMbps
	}
	noHints = mbps == 0 && h.CapacityBytes == 0
	if noHints {
		mbps = p.DefaultMbps
	}
	return mbps, h.CapacityBytes, noHints
}

// checkLambdas refuses a lambdas hint whose bandwidth at PerLambdaMbps
// (when the hints give no --peak-mbps, which wins) passes the bound
// wire.JobHints.Check holds a peak Mb/s hint to (wire.MaxJobMbps), as
// CodeMalformed. Before, 4,294,967,295 lambdas (an SDK's -1, wrapped) were
// allotted 2.6e12 Mb/s, and every other job on the tier was left "at most
// 0" of its share.
func (p *Policy) checkLambdas(h wire.JobHints) error {
	if h.PeakMbps != 0 || h.Lambdas == 0 {
		return nil
	}
	if mbps := float64(h.Lambdas) * p.PerLambdaMbps; mbps > wire.MaxJobMbps {
		return wire.Errorf(wire.CodeMalformed, "lambdas hint %d: %.4g Mb/s at %.0f Mb/s a lambda is over the bound of %.4g Mb/s",
			h.Lambdas, mbps, p.PerLambdaMbps, float64(wire.MaxJobMbps))
	}
	return nil
}

// Where a job's size came from (step 2).
const (
	SizeHints   = "hints"   // the registration's hints
	SizeProfile = "profile" // the profile of earlier jobs of its name
	SizeDefault = "default" // Pocket's default: DefaultNodes, DefaultMbps
)

// needFor is a job's need (step 2): from its size hints when it gives any;
// else from learned (the profile of its name) when not nil; else Pocket's
// default. It returns the least number of nodes (DefaultNodes for the
// default, else 1) and where the size came from. A learned bandwidth is
// raised to at least PerLambdaMbps (one lambda's, the smallest hinted
// size), so that a profile of idle or cut-short runs never sizes a job at
// ~0 Mb/s; a learned capacity is taken as it is (it reserves, it does not
// limit, and the default reserves none).
func (p *Policy) needFor(h wire.JobHints, learned *Learned) (need Need, minNodes int, source string) {
	need.LatencySensitive = h.LatencySensitive
	mbps, bytes, noHints := p.demand(h)
	switch {
	case !noHints:
		need.Mbps, need.Bytes, need.Source = mbps, bytes, SizeHints
	case learned != nil:
		need.Mbps, need.Bytes, need.Source = max(learned.Mbps, p.PerLambdaMbps), max(learned.Bytes, 0), SizeProfile
	default:
		need.Mbps, need.Source = p.DefaultMbps, SizeDefault
		return need, p.DefaultNodes, need.Source
	}
	return need, 1, need.Source
}

// size chooses nodes and weights for a job with hints h and no profile
// among cands (steps 4 to 6). cands must not be empty; size reorders it.
func (p *Policy) size(cands []candidate, h wire.JobHints) plan {
	need, minNodes, _ := p.needFor(h, nil)
	return p.sizeNeed(cands, need, minNodes)
}

// sizeNeed chooses at least minNodes nodes (when there are) and weights
// for need among cands (steps 4 to 6), leaving out the nodes with no
// spare byte when others have one (withSpare). cands must not be empty;
// sizeNeed reorders it.
func (p *Policy) sizeNeed(cands []candidate, need Need, minNodes int) plan {
	cands = withSpare(cands, func(c candidate) int64 { return c.spareBytes }) // TierFor took a full tier only when all were
	mbps, bytes := need.Mbps, need.Bytes
	var allBw float64
	var allCap int64
	for _, c := range cands {
		allBw += c.spareMbps
		allCap = wire.SatAdd(allCap, c.spareBytes)
	}
	tput := ratio(mbps, allBw) >= ratio(float64(bytes), float64(allCap))
	sort.SliceStable(cands, func(i, j int) bool { return better(&cands[i], &cands[j], tput) })
	n := max(count(cands, mbps, bytes), minNodes)
	n = min(max(n, 1), len(cands))
	chosen := cands[:n]
	return plan{nodes: p.weights(chosen, mbps, bytes), mbps: mbps, bytes: bytes, throughput: tput}
}

// tierOffersLocked sums the spare figures of the active nodes per tier
// kind (step 3), for TierFor. Byte sums here and below saturate at
// math.MaxInt64 (wire.SatAdd): the nodes' reported bytes are bounded
// (wire.MaxNodeBytes), their number is not.
func (c *Controller) tierOffersLocked() []TierOffer {
	return c.tierOffersUnderLocked(1)
}

// tierOffersUnderLocked is tierOffersLocked with each node's spare
// bandwidth counted under high (a fraction of its Mb/s), as the job is
// then placed (candidatesUnderLocked), so that TierFor picks a tier whose
// nodes have room for the job's bandwidth under the band. Spare bytes are
// still whole: capacity is a hard limit, and a capacity need the tier
// holds only past the band has had its nodes started by reserve, or
// TierFor would refuse what reserve admitted.
func (c *Controller) tierOffersUnderLocked(high float64) []TierOffer {
	var out []TierOffer
	for _, kind := range []uint8{kindDRAM, kindNVMe} {
		o := TierOffer{Tier: wire.Tier(kind)}
		for _, cd := range c.candidatesLocked(kind) {
			o.Nodes++
			o.SpareBytes = wire.SatAdd(o.SpareBytes, cd.spareBytes)
		}
		// Bandwidth only of the nodes placement would take: those with
		// spare bytes on the tier, when any has (sizeNeed's withSpare).
		// Before, a tier whose bytes were all on one node offered every
		// node's bandwidth, and a job it could not carry was placed there
		// on that one node (a new user's trial: 600 Mb/s on a 500 Mb/s
		// node, while two nodes' DRAM sat empty).
		under := c.candidatesUnderLocked(kind, high)
		for _, cd := range withSpare(under, func(cd candidate) int64 { return cd.spareBytes }) {
			o.SpareMbps += cd.spareMbps
		}
		out = append(out, o)
	}
	return out
}

// sizeJobLocked sizes a new job (steps 1 to 6): its need from its hints,
// else from book's profile of its name (nil book: none), the tier TierFor
// picks at Config.Prices, and the nodes and weights on that tier. It
// returns the plan, the tier kind and where the size came from, or
// TierFor's error.
func (c *Controller) sizeJobLocked(book *profileBook, key string, req *wire.JobRegister) (plan, uint8, string, error) {
	return c.sizeJobForLocked(book, "", key, req, false)
}

// sizeJobForLocked is sizeJobLocked for a job of client (limitKey), its
// need held within the client's quota (quotaLocked). For a tenant
// (private), whether a capacity need fits is judged against the tiers'
// spare bytes rounded down to their 4 leading bits (privateSpare).
func (c *Controller) sizeJobForLocked(book *profileBook, client, key string, req *wire.JobRegister, private bool) (plan, uint8, string, error) {
	pol := &c.cfg.Policy
	need, minNodes, source := pol.needFor(req.Hints, book.learnedFor(key, req.Hints))
	need, err := c.quotaLocked(client, need)
	if err != nil {
		return plan{}, 0, source, err
	}
	// A job reserve may start nodes for gets its tier and its nodes with
	// the autoscaler's band, as reserve counts them; one Pocket's default
	// sizes is placed as Pocket placed it, over the nodes whose whole
	// spare covers it. Before, the tier was chosen by its nodes' whole
	// spare bandwidth: a tier with room only past the band took the job
	// while another had room under it.
	high := 1.0
	if need.Source != SizeDefault {
		high = c.bandHigh()
	}
	offers := c.tierOffersUnderLocked(high)
	if private {
		for i := range offers {
			offers[i].SpareBytes = privateSpare(offers[i].SpareBytes)
		}
	}
	asked := need.Bytes
	need = fitProfile(need, offers, c.cfg.Prices)
	tier, err := TierFor(need, offers, c.cfg.Prices)
	if err != nil {
		return plan{}, 0, source, err
	}
	kind := uint8(tier)
	p := pol.sizeNeed(heardFor(wholeWhenPast(c.candidatesUnderLocked(kind, high), need), need), need, minNodes)
	p.unreserved = asked - need.Bytes
	return p, kind, source, nil
}

// wholeWhenPast is cands with each node's spare bytes counted past the
// band's high, towards its tier's whole capacity (candidate.whole), when
// their spare under the band cannot hold need's bytes, which the tier's
// whole spare holds (TierFor took the tier for it, and reserve started
// the nodes it could): each node's room above the band is counted in the
// same fraction, the least that holds need, so the job goes past the band
// evenly and no further than it must. Placed by their spare under the
// band, the nodes' weights could not keep within it and gave nodes more
// than they hold: a new user's 2.9 GiB job on an autoscaling cluster at
// --max-nodes went on three of five nodes at a third each, 0.97 GiB of a
// node with 0.87 GiB spare, and another job's puts were refused there
// (TestPlacementAtMaxNodesStaysWithinSpare).
func wholeWhenPast(cands []candidate, need Need) []candidate {
	var under, whole int64
	for _, cd := range cands {
		under = wire.SatAdd(under, cd.spareBytes)
		whole = wire.SatAdd(whole, cd.whole())
	}
	if need.Bytes <= under || whole <= under {
		return cands
	}
	f := min(1, float64(need.Bytes-under)/float64(whole-under))
	out := slices.Clone(cands)
	for i, cd := range out {
		above := float64(cd.whole() - cd.spareBytes)
		out[i].spareBytes = min(cd.whole(), cd.spareBytes+int64(math.Ceil(f*above)))
	}
	return out
}

// heardFor is cands without the nodes restored from the state and not
// heard from since (candidate.unheard), when the others hold need (a
// hint's or profile's bandwidth and bytes within their spare; Pocket's
// default, which takes what room there is, when any is left): an unheard
// node may be dead, its grace not yet run out. A hostile trial's lone
// controller, restarted with its three nodes dead and three new ones up,
// placed jobs registered in its first 7 s over all six, and their puts to
// the dead ones failed "unavailable". A need the heard nodes' room does
// not hold keeps them all, and sizing takes the heard ones first (better),
// so only the unheard nodes the need wants beyond them (a re-check: a
// 100 MiB job went over all five nodes, two of them dead, and 39 of its
// 100 puts failed).
func heardFor(cands []candidate, need Need) []candidate {
	heard := slices.DeleteFunc(slices.Clone(cands), func(cd candidate) bool { return cd.unheard })
	if len(heard) == 0 || len(heard) == len(cands) {
		return cands
	}
	if need.Source == SizeDefault {
		return heard
	}
	var mbps float64
	var bytes int64
	for _, cd := range heard {
		mbps += cd.spareMbps
		bytes = wire.SatAdd(bytes, cd.spareBytes)
	}
	if mbps >= need.Mbps && bytes >= need.Bytes {
		return heard
	}
	return cands
}

// unreservedNote is a registration's note when the job's name's profile
// asked for capacity no tier had spare (plan.unreserved bytes): the reply
// said "sized from profile" with 0 bytes allotted and nothing else (a new
// user's trial). "" when the profile's capacity was reserved.
func unreservedNote(p plan) string {
	if p.unreserved <= 0 {
		return ""
	}
	return fmt.Sprintf("its name's profile asked for %s, more than any tier has spare: it reserves no capacity, "+
		"and its puts use the free capacity while there is some", units.FormatSize(p.unreserved))
}

// fitProfile is need, but with no capacity when the need comes from the
// job's name's profile and no tier of offers holds it (TierFor answers
// CodeNoSpace). The job asked for nothing: its name's earlier runs (its
// tenant's, over TLS; without TLS any client's) are a guess at its size, so it is
// not refused for them; nor does it take what is spare, which would leave
// every hinted job of every other tenant refused until it ends (a hostile
// trial had one hintless job take 512 of 512 MiB that way). It reserves
// no capacity, as a job Pocket's default sizes, and registers: its puts
// use the free capacity, and fail for lack of it as that job's would.
func fitProfile(need Need, offers []TierOffer, prices Prices) Need {
	if need.Source != SizeProfile || need.Bytes <= 0 {
		return need
	}
	if _, err := TierFor(need, offers, prices); errors.Is(err, wire.ErrNoSpace) {
		need.Bytes = 0
	}
	return need
}

// A job Pocket's default sizes (no size hint, no profile) is placed as
// Pocket placed it, over the nodes that cover DefaultMbps (at least
// DefaultNodes), but allotted no more bandwidth than they have room for:
// the sum over its nodes of the band's high (bandHigh) of the tier's
// bandwidth less what the node carries (the larger of its measured rx and
// tx and its allotments), capped at DefaultMbps (roomOnLocked). On nodes
// of Pocket's size (8 Gb/s) it keeps 2 nodes; its allotment is 16 Gb/s
// without an autoscaler, 12.8 Gb/s with the default band. Its allotment is
// what the policies compare its traffic with: a job allotted more than its
// nodes carry would never count as beyond it, so its map would never grow
// (elastic.go grows a job whose own traffic passes AllotmentSlack x its
// allotment), and the cluster's utilization would count the excess on its
// nodes and never drain an idle one. Status shows this allotment and its
// cost.

// allotLearnedLocked is the bandwidth allotted to a job sized without
// hints (Pocket's default, or its name's profile) over plan p on tier
// kind: what p asks, at most what its nodes have room for under the band's
// high (roomOnLocked; a profile recorded on a larger cluster, or inflated,
// asked more than the cluster's nodes carry, as the default did), and at
// least one lambda's bandwidth or, on smaller nodes, the band's high of
// its first node (a job placed on full nodes was allotted 0 Mb/s: nothing
// in status, its cost nothing, its traffic share 0 on nodes without
// per-job figures). The room is less what the registrations in flight
// hold (Controller.registering, the job's own let go): reserve counted it
// for them, and started nodes for them alone. Before, a job Pocket's
// default sizes, registered while nodes started for a hinted one, took
// the room the hinted one counted on, and the hinted one was placed past
// the band (a trial saw 968 Mb/s on nodes whose band is 800).
func (c *Controller) allotLearnedLocked(p plan, kind uint8) float64 {
	high := c.bandHigh()
	floor := c.cfg.Policy.PerLambdaMbps
	if len(p.nodes) > 0 {
		if n, ok := c.nodes[p.nodes[0].Addr]; ok {
			if t := n.tier(kind); t != nil {
				floor = min(floor, high*c.tierMbps(*t))
			}
		}
	}
	room := max(0, c.roomOnLocked(p.nodes, kind, high)-c.registering.Mbps)
	return max(min(floor, p.mbps), min(p.mbps, room))
}

// bandHigh is the utilization the autoscaler keeps nodes under (its
// High), or 1 (the whole bandwidth) when no autoscaler runs.
func (c *Controller) bandHigh() float64 {
	if a := c.scaler(); a != nil {
		return a.cfg.High
	}
	return 1
}

// roomOnLocked is the bandwidth, in Mb/s, that the nodes of a new
// placement have room for on tier kind under high (a fraction): per node,
// high x the tier's Mb/s (Policy.NodeMbps when it reports none) less the
// larger of its measured rx and tx and its allotments, at least 0.
func (c *Controller) roomOnLocked(nodes []wire.MapNode, kind uint8, high float64) float64 {
	var sum float64
	for _, mn := range nodes {
		n, ok := c.nodes[mn.Addr]
		if !ok {
			continue
		}
		t := n.tier(kind)
		if t == nil {
			continue
		}
		busy := max(n.rx, n.tx)
		if l := c.loads[mn.Addr]; l != nil {
			busy = max(busy, l.mbps)
		}
		sum += max(0, high*c.tierMbps(*t)-busy)
	}
	return sum
}

// learnedFor is the profile a job registering as name with hints h is
// sized from: none (nil) when its hints say its size, when the name has
// no profile, or when b is nil.
func (b *profileBook) learnedFor(name string, h wire.JobHints) *Learned {
	if b == nil || hinted(h) {
		return nil
	}
	if l, ok := b.learned(name); ok {
		return &l
	}
	return nil
}

// ratio is need/have, treating "nothing needed" as 0 and "needed but none
// spare" as +Inf.
func ratio(need, have float64) float64 {
	switch {
	case need <= 0:
		return 0
	case have <= 0:
		return math.Inf(1)
	}
	return need / have
}

// better orders candidates heard from since the controller started before
// unheard ones (candidate.unheard), then by spare on the binding
// dimension, then on the other one, then by address so equal nodes are
// chosen deterministically.
func better(a, b *candidate, tput bool) bool {
	if a.unheard != b.unheard {
		return b.unheard // a node heard since the restart first (heardFor)
	}
	if tput && a.spareMbps != b.spareMbps {
		return a.spareMbps > b.spareMbps
	}
	if a.spareBytes != b.spareBytes {
		return a.spareBytes > b.spareBytes
	}
	if a.spareMbps != b.spareMbps {
		return a.spareMbps > b.spareMbps
	}
	return a.addr < b.addr
}

// count is how many of the ordered candidates it takes for their spare to
// cover both needs; all of them when even all cannot.
func count(cands []candidate, mbps float64, bytes int64) int {
	var bw float64
	var capacity int64
	for i, c := range cands {
		bw += c.spareMbps
		capacity = wire.SatAdd(capacity, c.spareBytes)
		if bw >= mbps && capacity >= bytes {
			return i + 1
		}
	}
	return len(cands)
}

// weights blends each node's share of spare bandwidth and of spare
// capacity, in proportion to how hard the job presses on each, floors each
// at MinWeightShare of an equal share, normalizes to sum 1, and then holds
// each node within its spare bytes (capWeights): a node's weight is the
// share of the job's keys, and so of its allotted bytes, it gets, and
// capacity is a hard limit (puts beyond it fail) where bandwidth is not.
func (p *Policy) weights(chosen []candidate, mbps float64, bytes int64) []wire.MapNode {
	var bw float64
	var capacity int64
	for _, c := range chosen {
		bw += c.spareMbps
		capacity = wire.SatAdd(capacity, c.spareBytes)
	}
	pb, pc := math.Min(ratio(mbps, bw), 1e9), math.Min(ratio(float64(bytes), float64(capacity)), 1e9)
	alpha := 0.5
	if pb+pc > 0 {
		alpha = pb / (pb + pc)
	}
	n := float64(len(chosen))
	out := make([]wire.MapNode, len(chosen))
	var sum float64
	for i, c := range chosen {
		w := alpha*share(c.spareMbps, bw, n) + (1-alpha)*share(float64(c.spareBytes), float64(capacity), n)
		w = math.Max(w, p.MinWeightShare/n)
		out[i] = wire.MapNode{Addr: c.addr, Weight: w, State: wire.NodeActive}
		sum += w
	}
	for i := range out {
		out[i].Weight /= sum
	}
	capWeights(out, chosen, bytes)
	return out
}

// capWeights holds each node of out within its spare bytes: no weight
// over spareBytes/bytes (the node's share of the job's bytes is its
// weight, byteShares). The excess of the nodes over it goes to the others
// in proportion to their weights, round by round, until none is over;
// the weights still sum to 1. When the chosen nodes' spare bytes (counted
// under the band) do not cover bytes, a job placed past the band, each is
// held within its spare up to its whole capacity instead; when even those
// do not cover bytes, the weights are the nodes' shares of them, so that
// they all fill at once. Before, such a job's weights were the nodes'
// shares of their spare under the band, which gave a node with little
// room under the band but much beside it too little, and the other more
// than it holds: a new user's trial saw 271 MiB of a job on a 256 MiB node
// (its puts failed "no space" while the other node had 131 MiB free). A
// job of no bytes keeps its weights. The shares byteShares rounds from
// the weights may pass a node's spare by a byte.
func capWeights(out []wire.MapNode, chosen []candidate, bytes int64) {
	if bytes <= 0 {
		return
	}
	caps, capSum := byteCaps(chosen, bytes, func(c *candidate) int64 { return c.spareBytes })
	if capSum < 1 {
		caps, capSum = byteCaps(chosen, bytes, (*candidate).whole)
	}
	if capSum < 1 {
		for i := range out {
			out[i].Weight = share(caps[i], capSum, float64(len(out)))
		}
		return
	}
	holdWithin(out, caps)
}

// byteCaps is each chosen node's largest weight for a job of bytes, its
// spare (as spare reads it) over bytes, and their sum.
func byteCaps(chosen []candidate, bytes int64, spare func(*candidate) int64) ([]float64, float64) {
	caps := make([]float64, len(chosen))
	var sum float64
	for i := range chosen {
		caps[i] = float64(spare(&chosen[i])) / float64(bytes)
		sum += caps[i]
	}
	return caps, sum
}

// holdWithin holds each weight of out within caps (which sum to 1 or
// more), handing the excess to the weights not yet held in proportion to
// them, round by round.
func holdWithin(out []wire.MapNode, caps []float64) {
	held := make([]bool, len(out))
	for range out {
		var heldSum, free float64
		for i := range out {
			if held[i] {
				heldSum += out[i].Weight
			} else {
				free += out[i].Weight
			}
		}
		if free <= 0 {
			return
		}
		scale, over := (1-heldSum)/free, false
		for i := range out {
			if held[i] {
				continue
			}
			out[i].Weight *= scale
			if out[i].Weight > caps[i] {
				out[i].Weight, held[i], over = caps[i], true, true
			}
		}
		if !over {
			return
		}
	}
}

// share is part/whole, or an equal share when the whole is nothing.
func share(part, whole, n float64) float64 {
	if whole <= 0 {
		return 1 / n
	}
	return part / whole
}

// privateSpare is spare bytes as a tenant's registration may weigh them:
// rounded down to their 4 leading bits (by less than an eighth). Whether a capacity hint fits is a yes or no a tenant can ask
// again and again; against the exact spare, a hostile trial's tenant
// bisected it in 40 registrations (0.2 s) and followed another tenant's
// puts and deletes to within 8 KB. Rounded, its answers move only when
// the spare crosses one of 16 steps per power of two; but a tenant that
// first registers a job of a chosen capacity moves the spare across a
// step at will and reads it exactly again (a re-check: 96 registrations;
// README, Known limits). It stops passive reading, not a prober.
func privateSpare(b int64) int64 {
	if b <= 0 {
		return b
	}
	shift := max(bits.Len64(uint64(b))-4, 0)
	return b >> shift << shift
}
