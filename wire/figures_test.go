package wire

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"

	flatbuffers "github.com/google/flatbuffers/go"
)

// TestFigureBounds: every figure a node reports, and the job hints, are
// accepted at their bound and refused just over it, with an error naming
// the field; the old decoders accepted any finite non-negative figure.
func TestFigureBounds(t *testing.T) {
	overMbps := math.Nextafter(MaxNodeMbps, math.Inf(1))
	tier := func(ts TierStat) *NodeRegister { return &NodeRegister{Addr: "a:1", Tiers: []TierStat{ts}} }
	hbTier := func(ts TierStat) *Heartbeat { return &Heartbeat{Addr: "a:1", Tiers: []TierStat{ts}} }
	load := func(l JobLoad) *Heartbeat { l.Job = "j-1"; return &Heartbeat{Addr: "a:1", Loads: []JobLoad{l}} }
	metric := func(v float64) *Heartbeat { return &Heartbeat{Addr: "a:1", Metrics: []Metric{{Name: "m", Value: v}}} }
	hint := func(h JobHints) *JobRegister { return &JobRegister{Name: "j", Hints: h} }
	cases := []struct {
		name     string
		ok, over ControlMessage
		field    string
		want     error
	}{
		{"node rx", &Heartbeat{Addr: "a:1", RxMbps: MaxNodeMbps}, &Heartbeat{Addr: "a:1", RxMbps: overMbps}, "rx Mb/s", ErrTooLarge},
		{"node tx", &Heartbeat{Addr: "a:1", TxMbps: MaxNodeMbps}, &Heartbeat{Addr: "a:1", TxMbps: math.MaxFloat64}, "tx Mb/s", ErrTooLarge},
		{"cpu", &Heartbeat{Addr: "a:1", CPUPercent: MaxCPUPercent}, &Heartbeat{Addr: "a:1", CPUPercent: MaxCPUPercent + 1}, "CPU %", ErrTooLarge},
		{"cores", &NodeRegister{Addr: "a:1", Cores: MaxCores}, &NodeRegister{Addr: "a:1", Cores: MaxCores + 1}, "cores", ErrTooLarge},
		{"tier capacity", tier(TierStat{Kind: 1, CapacityBytes: MaxNodeBytes}), tier(TierStat{Kind: 1, CapacityBytes: MaxNodeBytes + 1}), "tier capacity", ErrTooLarge},
		{"tier used", hbTier(TierStat{Kind: 1, UsedBytes: MaxNodeBytes}), hbTier(TierStat{Kind: 1, UsedBytes: math.MaxInt64}), "tier used", ErrTooLarge},
		{"tier Mb/s", tier(TierStat{Kind: 1, Mbps: MaxNodeMbps}), tier(TierStat{Kind: 1, Mbps: overMbps}), "tier Mb/s", ErrTooLarge},
		{"tier Mb/s tiny", tier(TierStat{Kind: 1, Mbps: MinTierMbps}), tier(TierStat{Kind: 1, Mbps: 5e-324}), "tier Mb/s", ErrMalformed},
		{"job rx", load(JobLoad{RxMbps: MaxNodeMbps}), load(JobLoad{RxMbps: math.MaxFloat64}), "job rx Mb/s", ErrTooLarge},
		{"job tx", load(JobLoad{TxMbps: MaxNodeMbps}), load(JobLoad{TxMbps: overMbps}), "job tx Mb/s", ErrTooLarge},
		{"job bytes", load(JobLoad{Bytes: MaxNodeBytes}), load(JobLoad{Bytes: math.MaxInt64}), "job bytes", ErrTooLarge},
		{"held bytes", &Heartbeat{Addr: "a:1", Held: []HeldJob{{Job: "j-1", Bytes: MaxNodeBytes}}},
			&Heartbeat{Addr: "a:1", Held: []HeldJob{{Job: "j-1", Bytes: MaxNodeBytes + 1}}}, "held bytes", ErrTooLarge},
		{"metric", metric(-MaxMetricValue), metric(MaxMetricValue * 2), `metric "m"`, ErrTooLarge},
		{"capacity hint", hint(JobHints{CapacityBytes: MaxJobBytes}), hint(JobHints{CapacityBytes: MaxJobBytes + 1}), "capacity hint", ErrTooLarge},
		{"peak hint", hint(JobHints{PeakMbps: MaxJobMbps}), hint(JobHints{PeakMbps: math.MaxFloat64}), "peak Mb/s hint", ErrTooLarge},
	}
	b := flatbuffers.NewBuilder(0)
	for _, c := range cases {
		if err := fresh(c.ok).Decode(bytes.Clone(c.ok.Encode(b))); err != nil {
			t.Errorf("%s at its bound: %v", c.name, err)
		}
		err := fresh(c.over).Decode(bytes.Clone(c.over.Encode(b)))
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s over its bound: %v, want %v naming %q", c.name, err, c.want, c.field)
		}
	}
}

func TestJobHintsCheck(t *testing.T) {
	for _, h := range []JobHints{{}, {Lambdas: math.MaxUint32, CapacityBytes: MaxJobBytes, PeakMbps: MaxJobMbps}} {
		if err := h.Check(); err != nil {
			t.Errorf("%+v: %v", h, err)
		}
	}
	for _, c := range []struct {
		h    JobHints
		want error
	}{
		{JobHints{CapacityBytes: MaxJobBytes + 1}, ErrTooLarge},
		{JobHints{CapacityBytes: -1}, ErrMalformed},
		{JobHints{PeakMbps: math.Inf(1)}, ErrMalformed},
		{JobHints{PeakMbps: math.NaN()}, ErrMalformed},
		{JobHints{PeakMbps: MaxJobMbps * 2}, ErrTooLarge},
	} {
		if err := c.h.Check(); !errors.Is(err, c.want) {
			t.Errorf("%+v: %v, want %v", c.h, err, c.want)
		}
	}
}

// TestFigureBoundsFitSums: the bounds are what makes the controller's
// sums safe: a job's figures over MaxMapNodes nodes at their bounds, with
// a profile's headroom (1.1), fit int64 and stay finite.
func TestFigureBoundsFitSums(t *testing.T) {
	var bytesSum int64
	var mbpsSum float64
	for range MaxMapNodes {
		if bytesSum > math.MaxInt64-MaxNodeBytes {
			t.Fatalf("%d nodes of %d bytes overflow int64", MaxMapNodes, int64(MaxNodeBytes))
		}
		bytesSum += MaxNodeBytes
		mbpsSum += MaxNodeMbps
	}
	if bytesSum != MaxJobBytes || mbpsSum != MaxJobMbps {
		t.Fatalf("sums %d bytes, %g Mb/s; want MaxJobBytes %d, MaxJobMbps %g", bytesSum, mbpsSum, int64(MaxJobBytes), float64(MaxJobMbps))
	}
	if h := 1.1 * float64(bytesSum); h >= math.MaxInt64 {
		t.Fatalf("1.1 x %d = %g does not fit int64", bytesSum, h)
	}
}

func TestSaturating(t *testing.T) {
	for _, c := range []struct{ a, b, want int64 }{
		{1, 2, 3},
		{math.MaxInt64, 1, math.MaxInt64},
		{math.MaxInt64, math.MaxInt64, math.MaxInt64},
		{1 << 62, 1 << 62, math.MaxInt64},
		{math.MaxInt64 - 1, 1, math.MaxInt64},
		{-5, 3, -2},
		{math.MinInt64, -1, math.MinInt64},
	} {
		if got := SatAdd(c.a, c.b); got != c.want {
			t.Errorf("SatAdd(%d, %d) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
	for _, c := range []struct {
		f    float64
		want int64
	}{
		{0, 0}, {-1, 0}, {math.NaN(), 0}, {math.Inf(-1), 0}, {1.9, 1},
		{1.1 * math.MaxInt64, math.MaxInt64}, // int64() of it is math.MinInt64 on amd64
		{math.MaxInt64, math.MaxInt64}, {math.Inf(1), math.MaxInt64}, {math.MaxFloat64, math.MaxInt64},
		{1 << 62, 1 << 62},
	} {
		if got := SatBytes(c.f); got != c.want {
			t.Errorf("SatBytes(%g) = %d, want %d", c.f, got, c.want)
		}
	}
	for _, c := range []struct{ f, want float64 }{
		{5, 5}, {-1, 0}, {math.NaN(), 0}, {math.Inf(1), 10}, {11, 10}, {10, 10},
	} {
		if got := ClampMbps(c.f, 10); got != c.want {
			t.Errorf("ClampMbps(%g, 10) = %g, want %g", c.f, got, c.want)
		}
	}
	if got := ClampBytes(-3, 10); got != 0 {
		t.Errorf("ClampBytes(-3, 10) = %d", got)
	}
	if got := ClampBytes(math.MaxInt64, 10); got != 10 {
		t.Errorf("ClampBytes(max, 10) = %d", got)
	}
}

// FuzzHeartbeatFigures: a heartbeat of fuzzed figures decodes exactly when
// each is within its bound, and whatever decodes, summed over MaxMapNodes
// nodes as the controller sums a job's figures, is finite and fits int64.
func FuzzHeartbeatFigures(f *testing.F) {
	f.Add(10.5, 20.0, 37.5, int64(3<<30), int64(1<<40), 8000.0, 1e3)
	f.Add(MaxNodeMbps, MaxNodeMbps, float64(MaxCPUPercent), int64(MaxNodeBytes), int64(MaxNodeBytes), MaxNodeMbps, float64(MaxMetricValue))
	f.Add(math.MaxFloat64, 0.0, 0.0, int64(math.MaxInt64), int64(0), 0.0, 0.0)
	f.Add(math.Nextafter(MaxNodeMbps, math.Inf(1)), 1.0, 1.0, int64(MaxNodeBytes+1), int64(1), 0.5, -float64(MaxMetricValue)*2)
	b := flatbuffers.NewBuilder(0)
	f.Fuzz(func(t *testing.T, rx, tx, cpu float64, jobBytes, used int64, tierMbps, metric float64) {
		hb := &Heartbeat{Addr: "a:1", RxMbps: rx, TxMbps: tx, CPUPercent: cpu,
			Tiers:   []TierStat{{Kind: 1, CapacityBytes: used, UsedBytes: used, Mbps: tierMbps}},
			Metrics: []Metric{{Name: "m", Value: metric}},
			Loads:   []JobLoad{{Job: "j-1", RxMbps: rx, TxMbps: tx, Bytes: jobBytes}}}
		var got Heartbeat
		err := got.Decode(bytes.Clone(hb.Encode(b)))
		within := okMbps(rx) && okMbps(tx) && cpu >= 0 && cpu <= MaxCPUPercent && okBytes(jobBytes) && okBytes(used) &&
			(tierMbps == 0 || (tierMbps >= MinTierMbps && tierMbps <= MaxNodeMbps)) && math.Abs(metric) <= MaxMetricValue
		if (err == nil) != within {
			t.Fatalf("decode %v, within bounds %v", err, within)
		}
		if err != nil {
			return
		}
		l := got.Loads[0]
		var sumBytes int64
		var sumMbps float64
		for range MaxMapNodes {
			if sumBytes > math.MaxInt64-l.Bytes {
				t.Fatalf("job bytes %d over %d nodes overflow", l.Bytes, MaxMapNodes)
			}
			sumBytes += l.Bytes
			sumMbps += max(l.RxMbps, l.TxMbps) + got.RxMbps/max(got.Tiers[0].Mbps, MinTierMbps)
		}
		if math.IsInf(sumMbps, 0) || 1.1*float64(sumBytes) >= math.MaxInt64 {
			t.Fatalf("sums %g Mb/s, %d bytes", sumMbps, sumBytes)
		}
	})
}

func okMbps(f float64) bool { return f >= 0 && f <= MaxNodeMbps }
func okBytes(n int64) bool  { return n >= 0 && n <= MaxNodeBytes }
