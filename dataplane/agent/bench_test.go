package agent

import (
	"context"
	"fmt"
	"testing"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

var benchSecret = []byte("agent-bench-secret-0123456789")

// BenchmarkHeartbeatRound is one heartbeat round between a node and a
// controller holding 10,000 jobs, all placed on the node, in one process
// and without the network: the node fills its report, the controller
// decodes it, answers, the node decodes the ack and applies it to its job
// table. "unchanged" has nothing new for the node; "one-change" registers
// a job before each round (the node enters it in its table). ns/op is the
// whole round (both sides); node-ns/op is the node's share.
func BenchmarkHeartbeatRound(b *testing.B) {
	for _, change := range []bool{false, true} {
		name := "unchanged"
		if change {
			name = "one-change"
		}
		b.Run(name, func(b *testing.B) { benchRound(b, 10_000, change) })
	}
}

func benchRound(b *testing.B, jobs int, change bool) {
	ctl, err := controller.New(controller.Config{Secret: benchSecret, Logger: quietLog})
	if err != nil {
		b.Fatal(err)
	}
	defer ctl.Close()
	d, err := dataplane.NewDRAM(1<<20, dataplane.DRAMOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	n, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", DRAM: d, Guard: dataplane.NewTokenGuard(benchSecret),
		Net: netio.Config{Loops: 1}})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	addr := n.Addr().String()
	if _, err := ctl.RegisterNode(&wire.NodeRegister{Addr: addr,
		Tiers: []wire.TierStat{{Kind: 1, CapacityBytes: 1 << 40, Mbps: 1e9}}}); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < jobs; i++ {
		if _, err := ctl.RegisterJob(fmt.Sprintf("job%d", i), wire.JobHints{CapacityBytes: 1}); err != nil {
			b.Fatal(err)
		}
	}
	a := &agent{cfg: Config{Node: n, Addr: addr}, ctx: context.Background(), last: time.Now(), lastStats: n.Stats()}
	hbB, ackB := flatbuffers.NewBuilder(1024), flatbuffers.NewBuilder(1<<20)
	var nodeTime time.Duration
	round := func() *wire.NodeAck {
		t0 := time.Now()
		var hb wire.Heartbeat
		a.report(&hb)
		hb.Addr = addr
		meta := hb.Encode(hbB)
		t1 := time.Now()
		var in wire.Heartbeat
		if err := in.Decode(meta); err != nil {
			b.Fatal(err)
		}
		ack, err := ctl.Heartbeat(&in)
		if err != nil {
			b.Fatal(err)
		}
		ameta := ack.Encode(ackB)
		t2 := time.Now()
		var got wire.NodeAck
		if err := got.Decode(ameta); err != nil {
			b.Fatal(err)
		}
		a.ack(&got)
		nodeTime += t1.Sub(t0) + time.Since(t2)
		return &got
	}
	for i := 0; ; i++ { // sync the table: snapshot pages, then deltas
		if ack := round(); !ack.More && !ack.Full {
			break
		}
		if i > 100 {
			b.Fatal("table never synced")
		}
	}
	if got := len(n.PlacedJobs()); got != jobs {
		b.Fatalf("node table holds %d placed jobs, want %d", got, jobs)
	}
	nodeTime = 0
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		if change {
			b.StopTimer()
			if _, err := ctl.RegisterJob(fmt.Sprintf("new%d", i), wire.JobHints{CapacityBytes: 1}); err != nil {
				b.Fatal(err)
			}
			i++
			b.StartTimer()
		}
		round()
	}
	b.ReportMetric(float64(nodeTime.Nanoseconds())/float64(b.N), "node-ns/op")
}
