package wire

import "math"

// Bounds on the figures peers report, checked when decoding.
//
// A storage node's heartbeat and registration carry figures the
// controller adds up: a job's traffic and bytes over the nodes of its map,
// its profile's weighted peaks (times a headroom), the spare of a tier
// over the cluster. Finite and not negative is not enough: the largest
// float64 Mb/s summed over two heartbeats is +Inf, which the controller's
// state cannot encode, and math.MaxInt64 bytes times 1.1 overflows int64.
// So each figure a node reports is bounded by what one node can plausibly
// have, with a margin of orders of magnitude, and small enough that the
// sum over the largest placement (MaxMapNodes nodes), with the headroom
// the controller adds, still fits its type. A figure over its bound is
// refused with CodeTooLarge, naming the field, the figure and the bound;
// a NaN, infinite or negative one with CodeMalformed, as before.
//
// The controller does not rely on these bounds alone: it adds and converts
// such figures with the saturating helpers below (SatAdd, SatBytes,
// ClampMbps, ClampBytes), for figures that reach it without a decoder
// (in-process callers) or from a store written before the bounds.
const (
	// MaxNodeMbps bounds every bandwidth figure of one node, in Mb/s (10^6
	// bits a second): its rx and tx, a tier's bandwidth, one job's rx and
	// tx on it. 10^8 Mb/s is 100 Tb/s: over 100 times the fastest NIC
	// shipping today (800 Gb/s), and 4096 of them (MaxJobMbps) sum to
	// 4.1e11, far from float64's limits.
	MaxNodeMbps = 1e8
	// MinTierMbps is the least non-zero bandwidth a tier may report, in
	// Mb/s: 0 means "not measured" (the controller uses its policy's node
	// bandwidth), anything else is at least 1 Mb/s. The controller divides
	// traffic by it; a tier of 1e-300 Mb/s made every share infinite.
	MinTierMbps = 1
	// MaxNodeBytes bounds every byte figure of one node: a tier's capacity
	// and used bytes, one job's bytes held there. 2^50 bytes is 1 PiB,
	// more than the largest storage server of today holds (a 2U server of
	// 24 x 30.72 TB NVMe drives holds 0.74 PB; the largest DRAM servers,
	// tens of TB), and the largest power of two whose sum over MaxMapNodes
	// nodes, with a profile's headroom of 1.1, fits int64 (2^62 x 1.1 <
	// 2^63).
	MaxNodeBytes = 1 << 50
	// MaxCores bounds a node's core count: 8192 is the most Linux supports
	// (CONFIG_NR_CPUS of a MAXSMP x86-64 kernel).
	MaxCores = 1 << 13
	// MaxCPUPercent bounds a node's CPU figure: 100 % per core of
	// MaxCores cores, so that a node summing its cores' busy percentages
	// (as top does) fits as well as one sending their mean.
	MaxCPUPercent = 100 * MaxCores
	// MaxMetricValue bounds the magnitude of a telemetry figure
	// (Heartbeat.Metrics): 2^53, up to which float64 holds every integer.
	// No count, rate, byte figure or latency a node reports comes near it,
	// and MaxMetrics figures of MaxMapNodes nodes sum to a finite number.
	MaxMetricValue = 1 << 53

	// MaxJobMbps bounds a job's bandwidth (its peak Mb/s hint, a profile's
	// figures): all of MaxMapNodes nodes at MaxNodeMbps.
	MaxJobMbps = MaxMapNodes * MaxNodeMbps
	// MaxNodeJobs bounds a count of jobs one node reports (the ended jobs
	// whose persisted values it keeps): each holds at least one value,
	// and 2^32 is far beyond any node's key index, while a sum of it over
	// MaxMapNodes nodes stays an exact float64 (under 2^53) in a status
	// reply's figures.
	MaxNodeJobs = 1 << 32
	// MaxJobBytes bounds a job's bytes (its capacity hint, a profile's
	// figures): all of MaxMapNodes nodes at MaxNodeBytes, 2^62.
	MaxJobBytes = MaxMapNodes * MaxNodeBytes
)

// checkMbps refuses a bandwidth figure (Mb/s) that is not finite, is
// negative, or is over most.
func checkMbps(what string, f, most float64) error {
	if err := checkNum(what, f); err != nil {
		return err
	}
	if f > most {
		return Errorf(CodeTooLarge, "%s: %g Mb/s over the bound of %g Mb/s", what, f, most)
	}
	return nil
}

// checkTierMbps is checkMbps for a tier's bandwidth, which is 0 (not
// measured) or within [MinTierMbps, MaxNodeMbps].
func checkTierMbps(f float64) error {
	if err := checkMbps("tier Mb/s", f, MaxNodeMbps); err != nil {
		return err
	}
	if f > 0 && f < MinTierMbps {
		return Errorf(CodeMalformed, "tier Mb/s: %g, neither 0 (not measured) nor at least %d Mb/s", f, MinTierMbps)
	}
	return nil
}

// checkBytes refuses a byte figure that is negative or over most.
func checkBytes(what string, n, most int64) error {
	if err := checkSize(what, n); err != nil {
		return err
	}
	if n > most {
		return Errorf(CodeTooLarge, "%s: %d bytes over the bound of %d bytes", what, n, most)
	}
	return nil
}

// checkCPU refuses a CPU figure (percent) that is not finite, is
// negative, or is over MaxCPUPercent.
func checkCPU(f float64) error {
	if err := checkNum("CPU %", f); err != nil {
		return err
	}
	if f > MaxCPUPercent {
		return Errorf(CodeTooLarge, "CPU %%: %g over the bound of %d (100 %% of %d cores)", f, MaxCPUPercent, MaxCores)
	}
	return nil
}

// checkCores refuses a core count over MaxCores.
func checkCores(n uint32) error {
	if n > MaxCores {
		return Errorf(CodeTooLarge, "cores: %d over the bound of %d", n, MaxCores)
	}
	return nil
}

// checkMetric refuses a telemetry figure that is not finite or whose
// magnitude is over MaxMetricValue; a metric may be negative (a delta).
func checkMetric(name []byte, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return Errorf(CodeMalformed, "metric %q: not finite", name)
	}
	if math.Abs(v) > MaxMetricValue {
		return Errorf(CodeTooLarge, "metric %q: %g over the bound of %d in magnitude", name, v, int64(MaxMetricValue))
	}
	return nil
}

// Check refuses size hints the JobRegister decoder refuses: a capacity
// that is negative or over MaxJobBytes (CodeMalformed, CodeTooLarge), a
// peak Mb/s that is not finite, is negative, or is over MaxJobMbps. The
// decoder calls it; so must a caller that hands hints to the controller
// without a decoder. Lambdas need no bound: their bandwidth, Lambdas x a
// lambda's Mb/s, is a finite float64 for any uint32.
func (h JobHints) Check() error {
	return firstErr(checkBytes("capacity hint", h.CapacityBytes, MaxJobBytes), checkMbps("peak Mb/s hint", h.PeakMbps, MaxJobMbps))
}

// SatAdd is a+b for figures that are not negative (bytes, counts),
// saturating at math.MaxInt64 instead of wrapping to a negative number. A
// negative argument is added as it is.
func SatAdd(a, b int64) int64 {
	switch {
	case b > 0 && a > math.MaxInt64-b:
		return math.MaxInt64
	case b < 0 && a < math.MinInt64-b:
		return math.MinInt64
	}
	return a + b
}

// SatBytes converts a byte figure computed in float64 (a share, a
// weighted mean, a product) to int64: NaN and figures at or below 0 are 0,
// figures at or over 2^63 (where Go's conversion is undefined, and gives
// math.MinInt64 on amd64) are math.MaxInt64; others are truncated.
func SatBytes(f float64) int64 {
	switch {
	case !(f > 0):
		return 0
	case f >= math.MaxInt64: // float64(math.MaxInt64) is 2^63
		return math.MaxInt64
	}
	return int64(f)
}

// ClampMbps is a bandwidth figure f within [0, most]: NaN and negative
// figures are 0, figures over most (+Inf among them) are most.
func ClampMbps(f, most float64) float64 {
	switch {
	case !(f > 0):
		return 0
	case f > most:
		return most
	}
	return f
}

// ClampBytes is a byte figure n within [0, most].
func ClampBytes(n, most int64) int64 {
	return min(max(n, 0), most)
}
