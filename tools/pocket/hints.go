package main

// pocket job register compares the job's hints with what the cluster has
// (the controller's status reply): a capacity hint beyond the capacity of
// the tier the job will get, or a bandwidth hint beyond the bandwidth of
// that tier's nodes, is warned about on stderr, and refused with --strict,
// before anything is registered.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/internal/pki"
	"github.com/pocketstore/pocket/internal/units"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// tierFigures are the active nodes of one tier, as a status reply lists
// them: their count, total capacity in bytes and total bandwidth in Mb/s
// (megabits a second). A tier that reports no bandwidth counts as the
// controller's Policy.NodeMbps, as the controller's sizing counts it;
// assumed is how many did.
type tierFigures struct {
	tier          wire.Tier
	nodes         int
	capacityBytes int64
	mbps          float64
	assumed       int
	refused       error // controller.TierFor's refusal of the job, if any
	// autoscaleMax is the controller's autoscaler's largest node count
	// (wire.ClusterStatus.AutoscaleMaxNodes); 0: it does not autoscale.
	autoscaleMax int
	// jobs are the jobs the status lists on the tier, and allocMbps
	// their bandwidth allotments (Mb/s): they share its nodes with a new
	// job, so an oversubscribing one makes them get less too.
	jobs      int
	allocMbps float64
}

// errStatusPartial: the status reply lists only part of the nodes (its
// size bound), so the cluster's totals are unknown.
var errStatusPartial = errors.New("the controller's status lists only part of the nodes")

// tierOffers sums what the active nodes of st offer per tier, as
// controller.TierFor takes it: spare capacity is each tier's capacity less
// its used bytes, spare bandwidth its Mb/s (Policy.NodeMbps when it
// reports none) less the node's busier direction. The controller also
// subtracts what it allotted to earlier jobs, which a status reply does
// not sum, so its spare may be smaller.
func tierOffers(st *wire.ClusterStatus) []controller.TierOffer {
	nodeMbps := controller.DefaultPolicy().NodeMbps
	out := []controller.TierOffer{{Tier: wire.TierDRAM}, {Tier: wire.TierNVMe}}
	for _, n := range st.Nodes {
		if n.State != wire.NodeActive {
			continue
		}
		for i := range out {
			t := nodeTier(n, out[i].Tier)
			if t == nil {
				continue
			}
			mbps := t.Mbps
			if mbps <= 0 {
				mbps = nodeMbps
			}
			out[i].Nodes++
			out[i].SpareMbps += max(0, mbps-max(n.RxMbps, n.TxMbps))
			out[i].SpareBytes += max(0, t.CapacityBytes-t.UsedBytes)
		}
	}
	return out
}

// hintsNeed is the need the controller reads from hints (controller
// Policy's step 2; without size hints, Pocket's default bandwidth).
func hintsNeed(h wire.JobHints) controller.Need {
	mbps, _ := hintMbps(h)
	if h.PeakMbps == 0 && h.Lambdas == 0 && h.CapacityBytes == 0 {
		mbps = controller.DefaultPolicy().DefaultMbps
	}
	return controller.Need{Mbps: mbps, Bytes: h.CapacityBytes, LatencySensitive: h.LatencySensitive, Source: controller.SizeHints}
}

// jobTier is the tier the controller gives a job of need on the cluster of
// st at prices: controller.TierFor over st's offers, the one definition of
// the rule. Its error is TierFor's (no tier holds the capacity, or no
// active node has a tier the job may use).
func jobTier(st *wire.ClusterStatus, need controller.Need, prices controller.Prices) (wire.Tier, error) {
	return controller.TierFor(need, tierOffers(st), prices)
}

func nodeTier(n wire.NodeStatus, t wire.Tier) *wire.TierStat {
	for i := range n.Tiers {
		if wire.Tier(n.Tiers[i].Kind) == t {
			return &n.Tiers[i]
		}
	}
	return nil
}

// clusterTier sums the active nodes' figures of the tier a job of no size
// but its latency sensitivity gets, at the default prices.
func clusterTier(st *wire.ClusterStatus, latencySensitive bool) (tierFigures, error) {
	return clusterTierFor(st, controller.Need{LatencySensitive: latencySensitive}, controller.DefaultPrices())
}

// clusterTierFor sums the active nodes' figures of the tier a job of need
// gets at prices. When no tier fits the need (jobTier's error), it sums
// the tier the job would get without its capacity need, and keeps the
// refusal in f.refused: the controller refuses such a job.
func clusterTierFor(st *wire.ClusterStatus, need controller.Need, prices controller.Prices) (tierFigures, error) {
	if int(st.NodeCount) > len(st.Nodes) {
		return tierFigures{}, fmt.Errorf("%w (%d of %d)", errStatusPartial, len(st.Nodes), st.NodeCount)
	}
	tier, refused := jobTier(st, need, prices)
	autoscaleMax := int(st.AutoscaleMaxNodes)
	if refused != nil {
		need.Bytes = 0
		var err error
		if tier, err = jobTier(st, need, prices); err != nil {
			return tierFigures{refused: refused, autoscaleMax: autoscaleMax}, nil
		}
	}
	f := tierFigures{tier: tier, refused: refused, autoscaleMax: autoscaleMax}
	for _, j := range st.Jobs {
		if wire.Tier(j.Tier) == f.tier {
			f.jobs++
			f.allocMbps += j.AllocMbps
		}
	}
	nodeMbps := controller.DefaultPolicy().NodeMbps
	for _, n := range st.Nodes {
		t := nodeTier(n, f.tier)
		if n.State != wire.NodeActive || t == nil {
			continue
		}
		f.nodes++
		f.capacityBytes += t.CapacityBytes
		if t.Mbps > 0 {
			f.mbps += t.Mbps
		} else {
			f.mbps += nodeMbps
			f.assumed++
		}
	}
	return f, nil
}

// hintExcesses names each hint that asks for more than f has, with the
// cluster's figure and what to do; none when the hints fit, when the
// controller autoscales (it then starts the nodes the job needs before
// placing it, or refuses a need its largest node count could not serve:
// controller/reserve.go, so the job never gets less than it asked for),
// and when the controller refuses the job (f.refused: no tier fits it or
// none is eligible), whose refusal then says why, with or without
// --strict.
func hintExcesses(h wire.JobHints, f tierFigures) []hintExcess {
	if f.autoscaleMax > 0 || f.refused != nil {
		return nil
	}
	var out []hintExcess
	where := fmt.Sprintf("the cluster's %s tier", f.tier)
	on := fmt.Sprintf("on %d active node(s)", f.nodes)
	if h.CapacityBytes > f.capacityBytes {
		out = append(out, hintExcess{
			fact: fmt.Sprintf("--capacity %s is more than %s holds: %s %s",
				units.FormatSize(h.CapacityBytes), where, units.FormatSize(f.capacityBytes), on),
			effect: "puts beyond it fail for lack of space"})
	}
	if want, hint := hintMbps(h); want > f.mbps {
		bw := fmt.Sprintf("%.0f Mb/s %s", f.mbps, on)
		if f.assumed > 0 {
			bw += fmt.Sprintf(" (%d report no bandwidth and count as %.0f Mb/s each)", f.assumed, controller.DefaultPolicy().NodeMbps)
		}
		out = append(out, hintExcess{fact: fmt.Sprintf("%s is more than %s serves now: %s", hint, where, bw),
			effect: mbpsEffect(f)})
	} else if want > 0 && f.jobs > 0 && want+f.allocMbps > f.mbps {
		out = append(out, hintExcess{shared: true,
			fact: fmt.Sprintf("%s with the %d job(s) already on %s (%.0f Mb/s allotted) comes to %.0f of the %.0f Mb/s it serves %s",
				hint, f.jobs, where, f.allocMbps, want+f.allocMbps, f.mbps, on),
			effect: "every job on the tier gets less than it asked for: the nodes' bandwidth is shared in proportion to what each job asks of them (pocket status shows what each gets)"})
	}
	return out
}

// mbpsEffect is what a bandwidth hint beyond the tier means: the job gets
// less than it asked for, and so do the jobs already on the tier, since a
// node's bandwidth is shared in proportion to what each job asks of it.
func mbpsEffect(f tierFigures) string {
	if f.jobs == 0 || f.allocMbps <= 0 { // jobs allotted nothing lose nothing
		return "the job gets less than it asked for"
	}
	return fmt.Sprintf("the job gets less than it asked for, and the %d job(s) already on the tier (%.0f Mb/s allotted) get less than theirs: "+
		"the nodes' bandwidth is shared in proportion to what each job asks of them (pocket status shows what each gets)", f.jobs, f.allocMbps)
}

// hintExcess is a hint that asks for more than the cluster has: the fact
// (the hint and the cluster's figure) and what it means for a job
// registered all the same. A shared excess is a hint the tier serves on
// its own but not beside the jobs already there: a note, which --strict
// does not refuse (it refuses a hint beyond the cluster).
type hintExcess struct {
	fact, effect string
	shared       bool
}

// noAutoscale says why an excess stays one.
const noAutoscale = "the controller does not autoscale: it starts no node for the job"

// String is the excess as a warning about a registered job.
func (e hintExcess) String() string {
	return fmt.Sprintf("%s; %s (%s)", e.fact, e.effect, noAutoscale)
}

// hintMbps is the bandwidth the hints ask for in Mb/s, as the controller's
// policy reads them (--peak-mbps, else --lambdas times its bandwidth per
// lambda), and the hint named as the user gave it.
func hintMbps(h wire.JobHints) (float64, string) {
	if h.PeakMbps > 0 {
		return h.PeakMbps, fmt.Sprintf("--peak-mbps %.0f Mb/s", h.PeakMbps)
	}
	per := controller.DefaultPolicy().PerLambdaMbps
	mbps := float64(h.Lambdas) * per
	return mbps, fmt.Sprintf("--lambdas %d (%.0f Mb/s at %.0f Mb/s a lambda)", h.Lambdas, mbps, per)
}

// hintNext is what to do about hints that do not fit.
const hintNext = "add nodes (pocket node --controller ADDR, or pocket up --nodes N) or lower the hint"

// checkHints compares the hints with the cluster's status (which needs the
// operator's certificate), the tier chosen as the controller chooses it:
// at the controller's prices, which its status reply carries, else (a
// controller that does not send them) at prices. It returns the
// excesses, or the error that kept it from checking, the controller
// that answered as the leader ("" when none was asked), and whether the
// controller's prices were used (ctlPrices). Without capacity or
// bandwidth hints it asks nothing.
func checkHints(ctx context.Context, addr string, tf *tlsFlags, h wire.JobHints, prices controller.Prices) (excess []hintExcess, leader string, ctlPrices bool, err error) {
	if !hinted(h) {
		return nil, "", false, nil
	}
	tc, err := tf.config(pki.RoleOperator)
	var none *noMemberError
	if errors.As(err, &none) {
		// A tenant's directory: its client certificate may not read the
		// cluster's status, and should not be told to get an operator's.
		return nil, "", false, errors.New("that needs the cluster's status, which an operator's certificate reads and a client's may not")
	}
	if err != nil {
		return nil, "", false, err
	}
	mc := metaclient.New(ctlAddr(addr), metaclient.Options{TLS: tc, RetryFor: ctlRetryFor(ctlAddr(addr))})
	defer mc.Close()
	st, err := mc.Status(ctx)
	if err != nil {
		return nil, "", false, ctlError(err, addr, tf.insecure)
	}
	if p, ok, _ := replyPrices(st); ok {
		prices, ctlPrices = p, true
	}
	f, err := clusterTierFor(st, hintsNeed(h), prices)
	if err != nil {
		return nil, mc.Leader(), ctlPrices, err
	}
	return hintExcesses(h, f), mc.Leader(), ctlPrices, nil
}

// hinted reports whether h gives a hint checkHints checks.
func hinted(h wire.JobHints) bool { return h.CapacityBytes != 0 || h.PeakMbps != 0 || h.Lambdas != 0 }

// leaderFirst is the controller list (comma-separated) with leader, when
// it is one of them, moved first: a command that asked the list once
// asks the leader first the second time, rather than again each
// controller before it (a stopped one costs a probe, about 2.5 s; a new
// user's trial: job register with hints took 5.1 s with the first of
// three controllers stopped).
func leaderFirst(list, leader string) string {
	addrs := strings.Split(list, ",")
	i := slices.Index(addrs, leader)
	if i <= 0 {
		return list
	}
	return strings.Join(append([]string{leader}, slices.Delete(addrs, i, i+1)...), ",")
}

// reportHints tells from the outcome of checkHints whether to go on
// registering (with strict, only when the hints were checked and fit;
// a refusal is printed here) and returns the notes and warnings for the
// caller to print once the job is registered. Printed before, they stood
// above the controller's refusal of the same hints (that they were not
// checked, or that the job would get less than it asked), as if it had
// been registered, or nobody had looked at them.
func reportHints(excess []hintExcess, err error, strict bool) (code int, proceed bool, later []string) {
	switch {
	case err != nil && strict:
		return fail("job register: --strict: the hints could not be checked against the cluster, so the job is not registered: %v", err), false, nil
	case err != nil:
		later = append(later, fmt.Sprintf("note: the hints were not checked against the cluster: %v", err))
	case strict && slices.ContainsFunc(excess, func(e hintExcess) bool { return !e.shared }):
		var facts []string
		for _, e := range excess {
			if !e.shared {
				facts = append(facts, e.fact)
			}
		}
		return fail("job register: --strict: not registered, as its hints ask for more than the cluster has: %s (%s): %s",
			strings.Join(facts, "; "), noAutoscale, hintNext), false, nil
	}
	for _, e := range excess {
		if e.shared {
			later = append(later, fmt.Sprintf("note: %s; %s (%s)", e.fact, e.effect, noAutoscale))
		} else {
			later = append(later, fmt.Sprintf("warning: %s: %s (--strict refuses such a job)", e, hintNext))
		}
	}
	return 0, true, later
}
