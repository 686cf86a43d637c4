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
}

// errStatusPartial: the status reply lists only part of the nodes (its
// size bound), so the cluster's totals are unknown.
var errStatusPartial = errors.New("the controller's status lists only part of the nodes")

// jobTier is the tier the controller gives a job (controller.tierForLocked,
// step 1 of its policy): DRAM for a latency-sensitive job, else NVMe when
// an active node has an NVMe tier, else DRAM.
func jobTier(st *wire.ClusterStatus, latencySensitive bool) wire.Tier {
	if latencySensitive {
		return wire.TierDRAM
	}
	for _, n := range st.Nodes {
		if n.State == wire.NodeActive && nodeTier(n, wire.TierNVMe) != nil {
			return wire.TierNVMe
		}
	}
	return wire.TierDRAM
}

func nodeTier(n wire.NodeStatus, t wire.Tier) *wire.TierStat {
	for i := range n.Tiers {
		if wire.Tier(n.Tiers[i].Kind) == t {
			return &n.Tiers[i]
		}
	}
	return nil
}

// clusterTier sums the active nodes' figures of the tier a job with these
// hints gets.
func clusterTier(st *wire.ClusterStatus, latencySensitive bool) (tierFigures, error) {
	if int(st.NodeCount) > len(st.Nodes) {
		return tierFigures{}, fmt.Errorf("%w (%d of %d)", errStatusPartial, len(st.Nodes), st.NodeCount)
	}
	f := tierFigures{tier: jobTier(st, latencySensitive)}
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
// cluster's figure and what to do; none when the hints fit.
func hintExcesses(h wire.JobHints, f tierFigures) []string {
	var out []string
	where := fmt.Sprintf("the cluster's %s tier", f.tier)
	on := fmt.Sprintf("on %d active node(s)", f.nodes)
	if h.CapacityBytes > f.capacityBytes {
		out = append(out, fmt.Sprintf("--capacity %s is more than %s holds: %s %s; puts beyond it fail for lack of space",
			units.FormatSize(h.CapacityBytes), where, units.FormatSize(f.capacityBytes), on))
	}
	if want, hint := hintMbps(h); want > f.mbps {
		bw := fmt.Sprintf("%.0f Mb/s %s", f.mbps, on)
		if f.assumed > 0 {
			bw += fmt.Sprintf(" (%d report no bandwidth and count as %.0f Mb/s each)", f.assumed, controller.DefaultPolicy().NodeMbps)
		}
		out = append(out, fmt.Sprintf("%s is more than %s serves: %s; the job gets less than it asked for", hint, where, bw))
	}
	return out
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
// operator's certificate). It returns the excesses, or the error that kept
// it from checking. Without capacity or bandwidth hints it asks nothing.
func checkHints(ctx context.Context, addr string, tf *tlsFlags, h wire.JobHints) ([]string, error) {
	if h.CapacityBytes == 0 && h.PeakMbps == 0 && h.Lambdas == 0 {
		return nil, nil
	}
	tc, err := tf.config(pki.RoleOperator)
	if err != nil {
		return nil, err
	}
	mc := metaclient.New(ctlAddr(addr), metaclient.Options{TLS: tc})
	defer mc.Close()
	st, err := mc.Status(ctx)
	if err != nil {
		return nil, ctlError(err, addr, tf.insecure)
	}
	f, err := clusterTier(st, h.LatencySensitive)
	if err != nil {
		return nil, err
	}
	return hintExcesses(h, f), nil
}

// reportHints prints the outcome of checkHints and tells whether to go on
// registering: with strict, only when the hints were checked and fit.
func reportHints(excess []string, err error, strict bool) (code int, proceed bool) {
	switch {
	case err != nil && strict:
		return fail("job register: --strict: the hints could not be checked against the cluster, so the job is not registered: %v", err), false
	case err != nil:
		warn("job register", "note: the hints were not checked against the cluster: %v", err)
	case len(excess) > 0 && strict:
		return fail("job register: --strict: not registered: %s: %s", strings.Join(excess, "; "), hintNext), false
	case len(excess) > 0:
		for _, e := range excess {
			warn("job register", "warning: %s: %s (--strict refuses such a job)", e, hintNext)
		}
	}
	return 0, true
}
