package main

// What the jobs' allotments come to against the cluster. A job's
// allotment (ALLOC Mb/s, ALLOC SIZE) is what it asked for: its hints, its
// profile's or Pocket's default. Hints may ask more than the cluster has
// (job register warns, and registers the job anyway), so the allotments
// can sum beyond the nodes' capacity, and a job's nodes may carry less
// than it was allotted. The status says both: a line per tier with the
// allotments against the capacity of the live nodes that have the tier,
// and a line per job whose nodes carry less than its allotment.

import (
	"fmt"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/internal/units"
	"github.com/pocketstore/pocket/wire"
)

// tierAllotJSON is one tier's allotments against its capacity, in
// statusJSON.Tiers. Nodes are the live (not dead) nodes with the tier;
// CapacityMbps the tier's bandwidth on them in Mb/s (nodeTierMbps: each
// node's figure for the tier, as the controller places a job on it and
// job register warns of; the tiers of a node also share its network,
// which statusJSON.Network counts, each node once) and CapacityBytes
// their capacity; AllocMbps and AllocBytes sum the listed
// jobs of the tier (every job unless statusJSON.JobCount exceeds the
// jobs listed). OversubscribedMbps and OversubscribedBytes are the
// allotments beyond the capacity (Mb/s, bytes; 0 when within it), and
// Oversubscribed says whether either is above 0.
type tierAllotJSON struct {
	Tier                string  `json:"tier"`
	Nodes               int     `json:"nodes"`
	Jobs                int     `json:"jobs"`
	Oversubscribed      bool    `json:"oversubscribed"`
	CapacityMbps        float64 `json:"capacity_mbps"`
	AllocMbps           float64 `json:"alloc_mbps"`
	OversubscribedMbps  float64 `json:"oversubscribed_mbps"`
	CapacityBytes       int64   `json:"capacity_bytes"`
	AllocBytes          int64   `json:"alloc_bytes"`
	OversubscribedBytes int64   `json:"oversubscribed_bytes"`
}

// networkAllotJSON is statusJSON.Network: Nodes are the live nodes,
// CapacityMbps their bandwidth (nodeMbps, each node once), AllocMbps the
// listed jobs' allotments of every tier, OversubscribedMbps the allotments
// beyond the capacity (0 when within it).
type networkAllotJSON struct {
	Nodes              int     `json:"nodes"`
	Jobs               int     `json:"jobs"`
	Oversubscribed     bool    `json:"oversubscribed"`
	CapacityMbps       float64 `json:"capacity_mbps"`
	AllocMbps          float64 `json:"alloc_mbps"`
	OversubscribedMbps float64 `json:"oversubscribed_mbps"`
}

// nodeMbps is node n's bandwidth in Mb/s as the controller counts it: its
// fastest tier's, every tier of the node sharing it (the network bounds
// them all), or the controller's Policy.NodeMbps when it reports none.
func nodeMbps(n statusNodeJSON) float64 {
	bw := 0.0
	for _, t := range n.Tiers {
		bw = max(bw, t.Mbps)
	}
	if bw <= 0 {
		return controller.DefaultPolicy().NodeMbps
	}
	return bw
}

// nodeTierMbps is node n's bandwidth in Mb/s on its tier of kind as the
// controller counts it when placing a job there (candidatesUnderLocked):
// the tier's reported figure, or Policy.NodeMbps when it reports none; 0
// when n has no such tier.
func nodeTierMbps(n statusNodeJSON, kind string) float64 {
	for _, t := range n.Tiers {
		if t.Kind == kind {
			if t.Mbps > 0 {
				return t.Mbps
			}
			return controller.DefaultPolicy().NodeMbps
		}
	}
	return 0
}

// hasTier reports whether node n has a tier of kind.
func hasTier(n statusNodeJSON, kind string) bool {
	for _, t := range n.Tiers {
		if t.Kind == kind {
			return true
		}
	}
	return false
}

// networkAllotment sums v's listed jobs' bandwidth allotments against the
// live nodes' bandwidth.
func networkAllotment(v *statusJSON) networkAllotJSON {
	var a networkAllotJSON
	for _, n := range v.Nodes {
		if n.State != wire.NodeDead.String() {
			a.Nodes++
			a.CapacityMbps += nodeMbps(n)
		}
	}
	for _, j := range v.Jobs {
		a.Jobs++
		a.AllocMbps += j.AllocMbps
	}
	a.OversubscribedMbps = max(0, a.AllocMbps-a.CapacityMbps)
	a.Oversubscribed = a.OversubscribedMbps > 0
	return a
}

// tierAllotments sums v's listed jobs' allotments per tier against the
// capacity of the live nodes with the tier, for the tiers jobs use, in
// the order of their first job.
func tierAllotments(v *statusJSON) []tierAllotJSON {
	out := []tierAllotJSON{}
	idx := map[string]int{}
	for _, j := range v.Jobs {
		i, ok := idx[j.Tier]
		if !ok {
			i, idx[j.Tier] = len(out), len(out)
			out = append(out, tierCapacity(v.Nodes, j.Tier))
		}
		out[i].Jobs++
		out[i].AllocMbps += j.AllocMbps
		out[i].AllocBytes += j.AllocBytes
	}
	for i := range out {
		t := &out[i]
		t.OversubscribedMbps = max(0, t.AllocMbps-t.CapacityMbps)
		t.OversubscribedBytes = max(0, t.AllocBytes-t.CapacityBytes)
		t.Oversubscribed = t.OversubscribedMbps > 0 || t.OversubscribedBytes > 0
	}
	return out
}

// tierCapacity sums the live nodes' bandwidth and capacity of tier kind.
func tierCapacity(nodes []statusNodeJSON, kind string) tierAllotJSON {
	t := tierAllotJSON{Tier: kind}
	for _, n := range nodes {
		if n.State == wire.NodeDead.String() {
			continue
		}
		if !hasTier(n, kind) {
			continue
		}
		t.Nodes++
		t.CapacityMbps += nodeTierMbps(n, kind)
		for _, nt := range n.Tiers {
			if nt.Kind == kind {
				t.CapacityBytes += nt.CapacityBytes
			}
		}
	}
	return t
}

// setCarry fills each listed job's CarryMbps and CarryBytes: the Mb/s
// and bytes its map's nodes carry of its allotment when every listed job
// uses its whole allotment. A job's allotment falls on its nodes by
// weight; a node asked for more than its bandwidth (nodeMbps: every
// tier's jobs share it), than its bandwidth on the job's tier (nodeTierMbps)
// or than its capacity on the job's tier, shares it in proportion to what
// each job asks of it; a dead node carries nothing.
// A node the status does not list (its size bound) is taken to carry its
// share. Jobs the status does not list are not counted on the nodes, so
// with some unlisted a job may carry less than this.
func setCarry(v *statusJSON) {
	byAddr := make(map[string]statusNodeJSON, len(v.Nodes))
	for _, n := range v.Nodes {
		byAddr[n.Addr] = n
	}
	asked := map[string]float64{}      // Mb/s the listed jobs ask of each node
	askedTier := map[string]float64{}  // Mb/s the listed jobs ask of each node's tier, by "tier addr"
	askedBytes := map[string]float64{} // bytes the listed jobs ask of each node's tier, by "tier addr"
	for _, j := range v.Jobs {
		for addr, w := range jobWeights(j) {
			asked[addr] += j.AllocMbps * w
			askedTier[j.Tier+" "+addr] += j.AllocMbps * w
			askedBytes[j.Tier+" "+addr] += float64(j.AllocBytes) * w
		}
	}
	for i := range v.Jobs {
		j := &v.Jobs[i]
		var mbps, bytes float64
		for addr, w := range jobWeights(*j) {
			n, listed := byAddr[addr]
			switch {
			case !listed:
				mbps += j.AllocMbps * w
				bytes += float64(j.AllocBytes) * w
			case n.State == wire.NodeDead.String():
			default:
				share := min(1, nodeMbps(n)/asked[addr])
				if ask := askedTier[j.Tier+" "+addr]; ask > 0 {
					share = min(share, nodeTierMbps(n, j.Tier)/ask)
				}
				mbps += j.AllocMbps * w * share
				if ask := askedBytes[j.Tier+" "+addr]; ask > 0 {
					bytes += float64(j.AllocBytes) * w * min(1, float64(tierBytes(n, j.Tier))/ask)
				}
			}
		}
		j.CarryMbps, j.CarryBytes = mbps, int64(bytes)
	}
}

// liveNodesText is "2 node(s)", or "1 live node(s) (1 dead)" for a map
// with dead nodes, which carry nothing (setCarry): a new user's trial read
// "what its 2 node(s) carry" for a job one of whose two nodes was dead.
func liveNodesText(ns []mapNodeJSON) string {
	dead := 0
	for _, n := range ns {
		if n.State == wire.NodeDead.String() {
			dead++
		}
	}
	if dead == 0 {
		return fmt.Sprintf("%d node(s)", len(ns))
	}
	return fmt.Sprintf("%d live node(s) (%d dead)", len(ns)-dead, dead)
}

// tierBytes is node n's capacity on its tier of kind (0: it has none).
func tierBytes(n statusNodeJSON, kind string) int64 {
	for _, t := range n.Tiers {
		if t.Kind == kind {
			return t.CapacityBytes
		}
	}
	return 0
}

// jobWeights is the share of job j's allotment each node of its map
// takes: its weight over the map's (equal shares when they have none).
func jobWeights(j statusJobJSON) map[string]float64 {
	out := make(map[string]float64, len(j.Nodes))
	var sum float64
	for _, n := range j.Nodes {
		sum += n.Weight
	}
	for _, n := range j.Nodes {
		w := 1 / float64(len(j.Nodes))
		if sum > 0 {
			w = n.Weight / sum
		}
		out[n.Addr] += w
	}
	return out
}

// printAllotments prints a line per tier with the jobs' allotments against
// the capacity, marking oversubscription, and a line per job whose nodes
// carry less than its allotment.
func printAllotments(v statusJSON) {
	partial := ""
	if uint64(len(v.Jobs)) < v.JobCount {
		partial = fmt.Sprintf(" (the %d listed jobs; pocket status --jobs sums all)", len(v.Jobs))
	}
	fmt.Printf("ALLOC: what the jobs were allotted (their hints, else their profile's or the default size), against the live nodes' capacity%s:\n", partial)
	for _, t := range v.Allotments {
		fmt.Printf("  %s: %.0f of %.0f Mb/s%s, %s of %s%s, on %d node(s)\n", t.Tier, t.AllocMbps, t.CapacityMbps,
			overNote(t.OversubscribedMbps > 0, t.AllocMbps, t.CapacityMbps), units.FormatSize(t.AllocBytes), units.FormatSize(t.CapacityBytes),
			overNote(t.OversubscribedBytes > 0, float64(t.AllocBytes), float64(t.CapacityBytes)), t.Nodes)
	}
	if len(v.Allotments) > 1 {
		// The tiers' lines each count a node of several tiers whole.
		a := v.Network
		fmt.Printf("  all tiers: %.0f of %.0f Mb/s%s on %d node(s) (a node's tiers share its network)\n", a.AllocMbps, a.CapacityMbps,
			overNote(a.Oversubscribed, a.AllocMbps, a.CapacityMbps), a.Nodes)
	}
	for _, j := range v.Jobs {
		if j.AllocMbps-j.CarryMbps >= 0.5 {
			fmt.Printf("job %s gets at most %.0f of its %.0f Mb/s: what its %s carry when every job uses its allotment\n",
				j.JobID, j.CarryMbps, j.AllocMbps, liveNodesText(j.Nodes))
		}
		if j.AllocBytes-j.CarryBytes >= 1<<20 {
			fmt.Printf("job %s holds at most %s of its %s: what its %s hold when every job fills its allotment "+
				"(puts past it answer \"tier full\" until a node joins its map)\n",
				j.JobID, units.FormatSize(j.CarryBytes), units.FormatSize(j.AllocBytes), liveNodesText(j.Nodes))
		}
	}
}

// overNote marks an oversubscribed figure with its factor.
func overNote(over bool, alloc, capacity float64) string {
	switch {
	case !over:
		return ""
	case capacity <= 0:
		return ": OVERSUBSCRIBED (no capacity)"
	}
	return ": OVERSUBSCRIBED " + units.FormatFactor(alloc/capacity)
}
