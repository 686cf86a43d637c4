package blkbpf

import (
	"testing"

	"github.com/pocketstore/pocket/telemetry/metrics"
)

// TestReadingSlots: the kernel's log2 slot s lands in the bucket of
// metrics.Log2Layout that holds [2^s, 2^(s+1)), and the top slots are
// clamped into the last bucket.
func TestReadingSlots(t *testing.T) {
	r := Reading{Latency: metrics.NewSnapshot(metrics.Log2Layout)}
	for _, s := range []int{0, 10, 20, 62, 63} {
		r.addSlot(s, uint64(s+1))
	}
	l := metrics.Log2Layout
	for _, s := range []int{0, 10, 20} {
		b := l.Bucket(1 << uint(s))
		if r.Latency.Counts[b] != uint64(s+1) {
			t.Errorf("slot %d: bucket %d holds %d, want %d", s, b, r.Latency.Counts[b], s+1)
		}
		if lo, w := l.Bounds(b); lo != 1<<uint(s) || w != 1<<uint(s) {
			t.Errorf("slot %d: bucket %d is [%d,+%d)", s, b, lo, w)
		}
	}
	if last := r.Latency.Counts[len(r.Latency.Counts)-1]; last != 63+64 {
		t.Errorf("last bucket %d, want slots 62 and 63 (127)", last)
	}
	if r.Latency.Count() != 1+11+21+63+64 {
		t.Errorf("count %d", r.Latency.Count())
	}
}

func TestDevEncoding(t *testing.T) {
	for _, c := range [][2]uint32{{259, 0}, {8, 17}, {254, 0}, {4095, minorMask}} {
		ma, mi := splitDev(devKey(c[0], c[1]))
		if ma != c[0] || mi != c[1] {
			t.Errorf("devKey(%d,%d) round trip gave %d,%d", c[0], c[1], ma, mi)
		}
	}
}
