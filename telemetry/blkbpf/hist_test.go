package blkbpf

import (
	"math"
	"testing"
	"time"
)

func TestHistogramQuantileAndSub(t *testing.T) {
	var h Histogram
	h.Counts[10] = 90 // 1024..2047 ns
	h.Counts[20] = 10 // ~1 ms
	h.SumNs = 90*1500 + 10*1_500_000
	if h.Count() != 100 {
		t.Fatalf("Count = %d", h.Count())
	}
	if got, want := h.Quantile(0.5), SlotMid(10); got != want {
		t.Errorf("p50 = %v, want %v", got, want)
	}
	if got, want := h.Quantile(0.95), SlotMid(20); got != want {
		t.Errorf("p95 = %v, want %v", got, want)
	}
	if got := h.Mean(); got != time.Duration(h.SumNs/100) {
		t.Errorf("Mean = %v", got)
	}
	if mid := SlotMid(10); mid < 1024 || mid >= 2048 {
		t.Errorf("SlotMid(10) = %v outside its slot", mid)
	}
	if SlotUpper(10) != 2048 {
		t.Errorf("SlotUpper(10) = %v", SlotUpper(10))
	}
	prev := h
	prev.Counts[10] = 40
	prev.SumNs = 40 * 1500
	d := h.Sub(&prev)
	if d.Counts[10] != 50 || d.Counts[20] != 0 || d.SumNs != h.SumNs-prev.SumNs {
		t.Errorf("Sub = %v / %d", d.Counts[10:21], d.SumNs)
	}
	var empty Histogram
	if empty.Quantile(0.99) != 0 || empty.Mean() != 0 {
		t.Error("empty histogram has a latency")
	}
}

func TestDevEncoding(t *testing.T) {
	for _, c := range [][2]uint32{{259, 0}, {8, 17}, {254, 0}, {4095, minorMask}} {
		ma, mi := splitDev(devKey(c[0], c[1]))
		if ma != c[0] || mi != c[1] {
			t.Errorf("devKey(%d,%d) round trip gave %d,%d", c[0], c[1], ma, mi)
		}
	}
	if math.IsNaN(SlotUpper(63)) {
		t.Error("SlotUpper(63) NaN")
	}
}
