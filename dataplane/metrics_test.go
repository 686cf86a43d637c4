package dataplane

import (
	"bytes"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pocketstore/pocket/telemetry/metrics"
	"github.com/pocketstore/pocket/wire"
	dto "github.com/prometheus/client_model/go"
)

// scrapeNode serves n's collector from a registry of its own over HTTP
// on loopback, as `pocket node --metrics` does, and reads it back.
func scrapeNode(t *testing.T, n *Node) metrics.Families {
	t.Helper()
	reg, err := metrics.NewRegistry(n.MetricsCollector())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(metrics.Handler(reg, nil))
	defer srv.Close()
	fams, err := metrics.Scrape(srv.Client(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

func wantMetric(t *testing.T, fams metrics.Families, want float64, name string, labels ...string) {
	t.Helper()
	if v, ok := fams.Value(name, labels...); !ok || v != want {
		t.Errorf("%s%v = %v (found %v), want %v", name, labels, v, ok, want)
	}
}

func latencyCount(fams metrics.Families, op string) uint64 {
	m := fams.Find(metrics.NodeRequestDuration, "op", op)
	if m == nil {
		return 0
	}
	return m.GetHistogram().GetSampleCount()
}

// TestNodeMetricsCount: a scrape of a node after puts, gets, misses and
// bad requests shows each counted once by op and result, the value bytes
// both ways, the open connection, the tier's bytes and a latency per
// request.
func TestNodeMetricsCount(t *testing.T) {
	n := startNode(t, 64<<20, nil)
	before := scrapeNode(t, n)
	wantMetric(t, before, 0, metrics.NodeRequests, "op", "put", "result", "ok")
	wantMetric(t, before, 0, metrics.NodeConnections)
	if latencyCount(before, "get") != 0 || before.Find(metrics.NodeRequestDuration, "op", "get") == nil {
		t.Fatal("no empty get latency histogram before any request")
	}

	c := dial(t, n, "job-1")
	const puts, gets, misses = 7, 5, 3
	var in, out int
	for i := range puts {
		val := bytes.Repeat([]byte{byte(i)}, 1000+i*100)
		r := roundTrip(t, c, wire.OpPut, 0, &wire.Request{Job: []byte("job-1"), Key: []byte(fmt.Sprint("k", i))}, val)
		if r.Code != wire.CodeOK {
			t.Fatal(r.Err())
		}
		in += len(val)
		if i < gets {
			out += len(val)
		}
	}
	for i := range gets {
		r := roundTrip(t, c, wire.OpGet, 0, &wire.Request{Job: []byte("job-1"), Key: []byte(fmt.Sprint("k", i))}, nil)
		if r.Code != wire.CodeOK {
			t.Fatal(r.Err())
		}
	}
	for i := range misses {
		r := roundTrip(t, c, wire.OpGet, 0, &wire.Request{Job: []byte("job-1"), Key: []byte(fmt.Sprint("none", i))}, nil)
		if r.Code != wire.CodeNotFound {
			t.Fatalf("miss: %v", r.Err())
		}
	}
	roundTrip(t, c, wire.OpPing, 0, &wire.Request{}, nil)
	roundTrip(t, c, wire.Op(0x3E), 0, &wire.Request{Job: []byte("j"), Key: []byte("k")}, nil)

	fams := scrapeNode(t, n)
	wantMetric(t, fams, puts, metrics.NodeRequests, "op", "put", "result", "ok")
	wantMetric(t, fams, gets, metrics.NodeRequests, "op", "get", "result", "ok")
	wantMetric(t, fams, misses, metrics.NodeRequests, "op", "get", "result", "not_found")
	wantMetric(t, fams, 1, metrics.NodeRequests, "op", "ping", "result", "ok")
	wantMetric(t, fams, 1, metrics.NodeRequests, "op", "other", "result", "unknown_opcode")
	if got := fams.Sum(metrics.NodeRequests); got != puts+gets+misses+2 {
		t.Errorf("%v requests counted in all, want %d", got, puts+gets+misses+2)
	}
	wantMetric(t, fams, float64(in), metrics.NodeReceivedBytes)
	wantMetric(t, fams, float64(out), metrics.NodeSentBytes)
	wantMetric(t, fams, 1, metrics.NodeConnections)
	u := n.Tiers()[0].Usage()
	wantMetric(t, fams, float64(u.Used), metrics.NodeTierUsed, "tier", "dram")
	wantMetric(t, fams, float64(u.Capacity), metrics.NodeTierCapacity, "tier", "dram")
	wantMetric(t, fams, puts, metrics.NodeTierValues, "tier", "dram")
	wantMetric(t, fams, 0, metrics.NodeDRAMCompactedValues) // nothing filled the tier: no compaction
	wantMetric(t, fams, 0, metrics.NodeDRAMCompactedPages)
	if u.Used < int64(in) || u.Capacity < 64<<20 {
		t.Errorf("tier usage %+v after %d bytes of puts", u, in)
	}
	if got := latencyCount(fams, "get"); got != gets+misses {
		t.Errorf("get latencies %d, want %d", got, gets+misses)
	}
	if got := latencyCount(fams, "put"); got != puts {
		t.Errorf("put latencies %d, want %d", got, puts)
	}
	h := fams.Find(metrics.NodeRequestDuration, "op", "put").GetHistogram()
	if h.GetSampleSum() <= 0 || h.GetSampleSum() > 60 || len(h.Bucket) != metrics.ExportBuckets+1 { // +Inf is parsed as a bucket
		t.Errorf("put latency sum %vs, %d buckets with +Inf", h.GetSampleSum(), len(h.Bucket))
	}
	if fams[metrics.NodeRequests].GetType() != dto.MetricType_COUNTER || fams[metrics.NodeRequestDuration].GetType() != dto.MetricType_HISTOGRAM {
		t.Error("wrong metric types")
	}
}

// TestSlotLabels: every data-plane opcode has its own slot and name, and
// unknown ones share "other".
func TestSlotLabels(t *testing.T) {
	for _, op := range []wire.Op{wire.OpPing, wire.OpPut, wire.OpGet, wire.OpDelete, wire.OpStat, wire.OpList,
		wire.OpDropJob, wire.OpUsage, wire.OpConfirm, wire.OpDropVersion} {
		if opSlot(op) != int(op) || opLabels[op] != op.String() {
			t.Errorf("%v: slot %d label %q", op, opSlot(op), opLabels[opSlot(op)])
		}
	}
	for _, op := range []wire.Op{0, 0x0F, 0x3E, wire.OpGet | wire.ReplyBit, wire.ControlBase} {
		if opSlot(op) != 0 {
			t.Errorf("%v: slot %d, want 0 (other)", op, opSlot(op))
		}
	}
	if codeLabels[wire.CodeOK] != "ok" || codeLabels[wire.CodeStaleEpoch] != "stale_map_epoch" || codeLabels[codeSlots-1] != "other" {
		t.Errorf("code labels %q", codeLabels)
	}
}

// TestRequestsOfOneReadTimedTogether: the successful replies queued while
// the node handles one read are counted and timed together when it is done
// with the read, each op with its own count, so the counters never show a
// request the histogram has not timed; an error reply, a reply outside a
// read, or one carrying its own start (withStart), is counted and timed at
// once.
func TestRequestsOfOneReadTimedTogether(t *testing.T) {
	var m nodeMetrics
	m.init(1)
	snap := func(op wire.Op) metrics.HistogramSnapshot {
		var s metrics.HistogramSnapshot
		if h := m.loop(0).lat[opSlot(op)].Load(); h != nil {
			h.Snapshot(&s)
		}
		return s
	}
	counted := func(op wire.Op, code wire.Code) uint64 {
		return m.loop(0).reqs[opSlot(op)][code].Load()
	}
	cs := &connState{start: monoNow(), inData: true}
	for range 5 {
		m.doneOn(0, cs, wire.OpGet, wire.CodeOK)
	}
	m.doneOn(0, cs, wire.OpStat, wire.CodeNotFound)
	m.doneOn(0, cs, wire.OpPut, wire.CodeOK)
	if got, s := counted(wire.OpGet, wire.CodeOK), snap(wire.OpGet); got != 0 || s.Count() != 0 {
		t.Fatalf("during the read: %d gets counted, %d timed; want neither yet", got, s.Count())
	}
	if got, s := counted(wire.OpStat, wire.CodeNotFound), snap(wire.OpStat); got != 1 || s.Count() != 1 {
		t.Fatalf("an error reply during the read: counted %d, timed %d; want 1 and 1 at once", got, s.Count())
	}
	const pause = 2 * time.Millisecond
	time.Sleep(pause)
	cs.withStart(monoNow(), func() { m.doneOn(0, cs, wire.OpDelete, wire.CodeOK) })
	if s := snap(wire.OpDelete); s.Count() != 1 || counted(wire.OpDelete, wire.CodeOK) != 1 || s.Max >= uint64(pause) {
		t.Fatalf("a reply with its own start: %d latencies, max %v; want 1 under %v, counted", s.Count(), time.Duration(s.Max), pause)
	}
	if !cs.inData {
		t.Fatal("withStart did not restore the read")
	}
	m.endData(0, cs)
	gets := snap(wire.OpGet)
	if gets.Count() != 5 || counted(wire.OpGet, wire.CodeOK) != 5 || gets.Sum != 5*gets.Max || gets.Max < uint64(pause) {
		t.Fatalf("gets after the read: %d counted, %d latencies, sum %d, max %d; want 5 equal ones of at least %v",
			counted(wire.OpGet, wire.CodeOK), gets.Count(), gets.Sum, gets.Max, pause)
	}
	if s := snap(wire.OpPut); s.Count() != 1 || counted(wire.OpPut, wire.CodeOK) != 1 || s.Sum != gets.Max {
		t.Fatalf("put after the read: %d latencies, sum %d; want 1 of %d", s.Count(), s.Sum, gets.Max)
	}
	if cs.inData || cs.pend != 0 || cs.pendN != [opSlots]uint32{} {
		t.Fatalf("read state left: inData %v, pend %b, pendN %v", cs.inData, cs.pend, cs.pendN)
	}
	cs.start = monoNow() - int64(time.Millisecond)
	m.doneOn(0, cs, wire.OpGet, wire.CodeOK)
	if s := snap(wire.OpGet); s.Count() != 6 || counted(wire.OpGet, wire.CodeOK) != 6 {
		t.Fatalf("a reply outside a read: %d get latencies, want 6", s.Count())
	}
}
