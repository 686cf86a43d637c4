package dataplane_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/nvme"
	"github.com/pocketstore/pocket/wire"
)

var trafficSecret = []byte("jobtraffic-test-secret-0123456789")

// trafficNode serves a DRAM and an NVMe tier behind a token guard, its
// job table synced with the live jobs a-1, b-2 and idle-3.
func trafficNode(t *testing.T) *dataplane.Node {
	t.Helper()
	d, err := dataplane.NewDRAM(64<<20, dataplane.DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tier := newNVMe(t, 64<<20, nvme.Options{}, dataplane.NVMeOptions{})
	n, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", DRAM: d, NVMe: tier,
		Guard: dataplane.NewTokenGuard(trafficSecret), Net: netio.Config{Loops: 2}})
	if err != nil {
		d.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.Close()
		d.Close()
	})
	n.ApplyAck(&wire.NodeAck{Known: true, State: wire.NodeActive, Rev: 100, Full: true, Jobs: []wire.JobEpoch{
		{Job: "a-1", Gen: 10}, {Job: "b-2", Gen: 11}, {Job: "idle-3", Gen: 12}}})
	return n
}

func trafficTok(job string) []byte {
	gen := map[string]uint64{"a-1": 10, "b-2": 11, "idle-3": 12}[job]
	return token.SignJob(trafficSecret, []byte(job), token.Claims{Gen: gen})
}

// trafficOp is one request of a pipelined batch.
type trafficOp struct {
	op   wire.Op
	job  string
	key  string
	nvme bool
	val  []byte // put: the value; get: the value expected
}

// runPipelined sends ops on one connection before reading any reply, so
// later requests are parsed while earlier gets are still being read
// (replies come in any order, matched by id).
func runPipelined(t *testing.T, n *dataplane.Node, ops []trafficOp) {
	t.Helper()
	c, err := client.DialConn(context.Background(), n.Addr().String(), client.ConnOptions{DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	byID := map[uint64]trafficOp{}
	for _, o := range ops {
		flags := uint16(0)
		if o.nvme {
			flags |= wire.FlagTierNVMe
		}
		var payload []byte
		if o.op == wire.OpPut {
			payload = o.val
		}
		req := wire.Request{Job: []byte(o.job), Key: []byte(o.key), Token: trafficTok(o.job)}
		id, err := c.Send(o.op, flags, &req, payload)
		if err != nil {
			t.Fatal(err)
		}
		byID[id] = o
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	for range ops {
		r, err := c.Recv()
		o := byID[r.ID]
		if err == nil {
			err = r.Err()
		}
		if err != nil {
			t.Fatalf("%v %s/%s: %v", o.op, o.job, o.key, err)
		}
		if o.op == wire.OpGet && !bytes.Equal(r.Payload, o.val) {
			t.Fatalf("get %s/%s: %d bytes, want %d", o.job, o.key, len(r.Payload), len(o.val))
		}
	}
}

// TestJobTrafficMatchesServed: the per-job counters a heartbeat's loads
// come from (Node.JobTraffic) count exactly the value bytes the node
// received and sent for each job, on DRAM and NVMe, small and streamed
// gets, served inline, on workers and from the event loop's reads, with
// two jobs' requests interleaved on one connection (a get answered after
// later requests were parsed still counts for its own job); a job that
// sent nothing is not listed, and the jobs' sums are the node's.
func TestJobTrafficMatchesServed(t *testing.T) {
	n := trafficNode(t)
	sizes := map[string][]int{"a-1": {1 << 10, 4 << 10, 100 << 10, 1 << 20}, "b-2": {64 << 10, 300 << 10}}
	in := map[string]uint64{}
	out := map[string]uint64{}
	stored := map[string]int64{}
	var puts, gets []trafficOp
	for _, job := range []string{"a-1", "b-2"} {
		for i, size := range sizes[job] {
			for _, onNVMe := range []bool{false, true} {
				o := trafficOp{job: job, key: fmt.Sprintf("k%d-%v", i, onNVMe), nvme: onNVMe, val: pattern(byte(i), size)}
				o.op = wire.OpPut
				puts = append(puts, o)
				in[job] += uint64(size)
				stored[job] += int64(size)
				for r := 0; r < 3; r++ {
					o.op = wire.OpGet
					gets = append(gets, o)
					out[job] += uint64(size)
				}
			}
		}
	}
	runPipelined(t, n, puts)
	// Interleave the jobs' gets: a, b, a, b, ...
	var mixed []trafficOp
	var as, bs []trafficOp
	for _, g := range gets {
		if g.job == "a-1" {
			as = append(as, g)
		} else {
			bs = append(bs, g)
		}
	}
	for i := 0; i < max(len(as), len(bs)); i++ {
		if i < len(as) {
			mixed = append(mixed, as[i])
		}
		if i < len(bs) {
			mixed = append(mixed, bs[i])
		}
	}
	runPipelined(t, n, mixed[:len(mixed)/2])
	runPipelined(t, n, mixed[len(mixed)/2:])

	got := map[string]dataplane.JobTraffic{}
	var sumIn, sumOut uint64
	for _, jt := range n.JobTraffic() {
		got[jt.Job] = jt
		sumIn += jt.BytesIn
		sumOut += jt.BytesOut
	}
	if len(got) != 2 {
		t.Fatalf("jobs counted: %v; want a-1 and b-2 (idle-3 sent nothing)", got)
	}
	for _, job := range []string{"a-1", "b-2"} {
		g := got[job]
		var held int64
		for _, tier := range n.Tiers() {
			held += tier.JobUsage([]byte(job))
		}
		if g.BytesIn != in[job] || g.BytesOut != out[job] || g.Held != held || held < stored[job] {
			t.Errorf("%s: in %d out %d held %d; want in %d out %d held %d (the tiers' use, at least the %d bytes stored)",
				job, g.BytesIn, g.BytesOut, g.Held, in[job], out[job], held, stored[job])
		}
	}
	if st := n.Stats(); st.BytesIn != sumIn || st.BytesOut != sumOut || st.Requests != uint64(len(puts)+len(mixed)) {
		t.Errorf("node in %d out %d after %d requests; the jobs' sums %d, %d after %d requests",
			st.BytesIn, st.BytesOut, st.Requests, sumIn, sumOut, len(puts)+len(mixed))
	}
}

// TestJobTrafficForgetsReplacedJobs: a job whose entry no longer is the
// table's (it was revoked, and a new job under its id, from another
// controller run, replaced it) is no longer listed; the new job starts
// from zero.
func TestJobTrafficForgetsReplacedJobs(t *testing.T) {
	n := trafficNode(t)
	runPipelined(t, n, []trafficOp{{op: wire.OpPut, job: "b-2", key: "k", val: make([]byte, 1000)}})
	if jt := n.JobTraffic(); len(jt) != 1 || jt[0].BytesIn != 1000 {
		t.Fatalf("counted %v; want b-2 with 1000 bytes in", jt)
	}
	n.ApplyAck(&wire.NodeAck{Known: true, State: wire.NodeActive, Rev: 101, Jobs: []wire.JobEpoch{{Job: "b-2", Gen: 11, Revoked: true}}})
	dataplane.AwaitDrops(n) // drops run off the heartbeat's goroutine (bgdrop.go)
	if jt := n.JobTraffic(); len(jt) != 1 || jt[0].BytesIn != 1000 || jt[0].Held != 0 {
		t.Fatalf("counted %v after b-2 was revoked; want it, with its 1000 bytes in and none held", jt)
	}
	// A snapshot of another controller run lists b-2 under another gen: a
	// new job under the id, whose entry replaces the revoked one.
	n.ApplyAck(&wire.NodeAck{Known: true, State: wire.NodeActive, Rev: 200, Full: true, Jobs: []wire.JobEpoch{
		{Job: "a-1", Gen: 10}, {Job: "b-2", Gen: 150}}})
	if jt := n.JobTraffic(); len(jt) != 0 {
		t.Fatalf("counted %v after b-2's entry was replaced; want none", jt)
	}
}
