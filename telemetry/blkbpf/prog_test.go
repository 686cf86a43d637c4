package blkbpf

import (
	"errors"
	"math/bits"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

// loadUnattached loads the programs and maps without attaching them, so a
// test can drive them with BPF_PROG_RUN and see only its own requests.
func loadUnattached(tb testing.TB) *ebpf.Collection {
	tb.Helper()
	if err := Supported(); err != nil {
		tb.Skipf("eBPF block probe unavailable here: %v", err)
	}
	coll, err := ebpf.NewCollection(collectionSpec(kLayout))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(coll.Close)
	return coll
}

// runRaw runs a raw tracepoint program with args[0] = rq.
func runRaw(tb testing.TB, p *ebpf.Program, rq uint64) {
	tb.Helper()
	if _, err := p.Run(&ebpf.RunOptions{Context: []uint64{rq}}); err != nil {
		if errors.Is(err, ebpf.ErrNotSupported) {
			tb.Skipf("BPF_PROG_RUN of raw tracepoints unsupported: %v", err)
		}
		tb.Fatalf("run %v: %v", p, err)
	}
}

// TestProgramsBucketALatency drives issue then complete for a fake request
// whose pointer cannot be read (so device 0, op read) and checks the exact
// map effects: the in-flight entry is gone, one count lands in the slot
// floor(log2(latency)), and the sum slot holds that latency.
func TestProgramsBucketALatency(t *testing.T) {
	coll := loadUnattached(t)
	const rq = 0x10 // unreadable: every probe read fails and yields zeros
	runRaw(t, coll.Programs["blk_issue"], rq)
	var inflight [16]byte
	if err := coll.Maps[startMap].Lookup(uint64(rq), &inflight); err != nil {
		t.Fatalf("issue left no in-flight entry: %v", err)
	}
	time.Sleep(2 * time.Millisecond)
	runRaw(t, coll.Programs["blk_complete"], rq)
	if err := coll.Maps[startMap].Lookup(uint64(rq), &inflight); !errors.Is(err, ebpf.ErrKeyNotExist) {
		t.Fatalf("complete left the in-flight entry (lookup: %v)", err)
	}
	var sum []uint64
	if err := coll.Maps[histMap].Lookup(histKey{Dev: 0, Op: uint16(OpRead), Slot: SumSlot}, &sum); err != nil {
		t.Fatalf("no sum entry: %v", err)
	}
	lat := total(sum)
	if lat < uint64(2*time.Millisecond) || lat > uint64(time.Second) {
		t.Fatalf("latency %v, slept 2ms", time.Duration(lat))
	}
	slot := uint16(bits.Len64(lat) - 1)
	var cnt []uint64
	if err := coll.Maps[histMap].Lookup(histKey{Dev: 0, Op: uint16(OpRead), Slot: slot}, &cnt); err != nil || total(cnt) != 1 {
		t.Fatalf("slot %d for %v: count %v, err %v", slot, time.Duration(lat), cnt, err)
	}
	// A completion with no issue (attached mid-flight) counts nothing.
	runRaw(t, coll.Programs["blk_complete"], rq+8)
	if err := coll.Maps[histMap].Lookup(histKey{Dev: 0, Op: uint16(OpRead), Slot: slot}, &cnt); err != nil || total(cnt) != 1 {
		t.Fatalf("unmatched completion changed the count to %v (%v)", cnt, err)
	}
}

func total(percpu []uint64) uint64 {
	var n uint64
	for _, v := range percpu {
		n += v
	}
	return n
}

// BenchmarkIssueComplete measures the in-kernel cost the probe adds to one
// block request: one issue plus one completion, via BPF_PROG_RUN.
func BenchmarkIssueComplete(b *testing.B) {
	coll := loadUnattached(b)
	issue, complete := coll.Programs["blk_issue"], coll.Programs["blk_complete"]
	b.ReportAllocs()
	rq := uint64(0x10)
	for b.Loop() {
		runRaw(b, issue, rq)
		runRaw(b, complete, rq)
	}
}
