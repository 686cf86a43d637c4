package controller

import (
	"errors"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// TestDrainSkipsLostNodes: a job whose only active node drains is given
// another node, never one it has lost (whatever that node still holds of
// the job is stale, and it is listed in the job's lost nodes); with no
// other node the drain is refused.
func TestDrainSkipsLostNodes(t *testing.T) {
	c := deadTest(t, time.Minute)
	a, b, m := jobLosingANode(t, c)
	if ack := c.heartbeat(&wire.Heartbeat{Addr: b.Addr}); ack.State != wire.NodeActive {
		t.Fatalf("the lost node is not active again: %+v", ack)
	}
	if _, err := c.Drain(a.Addr, time.Minute); !errors.Is(err, wire.ErrUnavailable) {
		m2, _ := c.GetMap(m.Job, m.Token)
		t.Fatalf("drain with only a lost node to go to: %v; map %+v; want unavailable", err, m2)
	}
	cn := dramNode("127.0.0.1:7003", 1<<30, 4000) // less spare bandwidth than the lost node
	mustRegister(t, c, cn)
	if _, err := c.Drain(a.Addr, time.Minute); err != nil {
		t.Fatal(err)
	}
	heardAll(t, c)
	m3, _ := c.GetMap(m.Job, m.Token)
	if _, ok := mapState(m3, b.Addr); ok {
		t.Fatalf("the job took back the node it lost: %+v", m3)
	}
	if st, ok := mapState(m3, cn.Addr); !ok || st != wire.NodeActive {
		t.Fatalf("the job got no node for its data: %+v", m3)
	}
}

// TestRetiredDrainLosesUnmovedData: a draining node that dies, or whose
// deadline passes, leaves its job's map listed as lost (its keys keep
// their owner over the map and its lost nodes, and so answer "lost"); a
// node that moved everything leaves without a trace.
func TestRetiredDrainLosesUnmovedData(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(c *Controller, addr string) time.Time // ends the drain; returns the tick's time
		lost bool
	}{
		{"died", func(c *Controller, addr string) time.Time {
			if err := c.SetNodeState(addr, wire.NodeDead); err != nil {
				t.Fatal(err)
			}
			return time.Now()
		}, true},
		{"deadline", func(c *Controller, addr string) time.Time {
			c.Heartbeat(&wire.Heartbeat{Addr: addr,
				Tiers:   []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, UsedBytes: 5 << 20}},
				Metrics: []wire.Metric{{Name: MetricDrainLeft, Value: 7}}})
			return time.Now().Add(2 * time.Minute)
		}, true},
		{"done", func(c *Controller, addr string) time.Time {
			c.Heartbeat(&wire.Heartbeat{Addr: addr,
				Tiers:   []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, UsedBytes: 1 << 20}},
				Metrics: []wire.Metric{{Name: MetricDrainDone, Value: 1}}})
			return time.Now()
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := deadTest(t, time.Hour) // the dead-node grace plays no part
			for _, n := range []string{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"} {
				mustRegister(t, c, dramNode(n, 1<<30, 8000))
			}
			m, err := c.RegisterJob("j", wire.JobHints{PeakMbps: 24000})
			if err != nil || len(m.Nodes) != 3 {
				t.Fatalf("%+v %v", m, err)
			}
			before := owners(mapPlacement(m, false), 2000)
			gone := m.Nodes[0].Addr
			if _, err := c.Drain(gone, time.Minute); err != nil {
				t.Fatal(err)
			}
			heardAll(t, c) // every node, the draining one too, learns the drain
			c.drainTick(tc.end(c, gone))
			heardAll(t, c)
			m2, err := c.GetMap(m.Job, m.Token)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := mapState(m2, gone); ok || len(m2.Nodes) != 2 {
				t.Fatalf("the retired node is still in the map: %+v", m2)
			}
			if !tc.lost {
				if len(m2.Lost) != 0 {
					t.Fatalf("a node that moved all its data is listed as lost: %+v", m2.Lost)
				}
				return
			}
			if len(m2.Lost) != 1 || m2.Lost[0].Addr != gone {
				t.Fatalf("lost nodes %+v, want %s", m2.Lost, gone)
			}
			after := owners(mapPlacement(m2, true), 2000)
			onIt := 0
			for i := range before {
				if before[i] != after[i] {
					t.Fatalf("key-%d: owner %s before, %s over the map and its lost nodes", i, before[i], after[i])
				}
				if before[i] == gone {
					onIt++
				}
			}
			if onIt == 0 {
				t.Fatal("no key was on the retired node: the test proves nothing")
			}
		})
	}
}
