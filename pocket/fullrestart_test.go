package pocket

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/dataplane/agent"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// TestRestartAtFullConnectionsTaken (hostile review of 6c63b73): a node
// restarted at its address whose data-plane connections are all taken
// (clients reconnecting to it; here its MaxConns, 1, held by one idle
// connection) is still taken for a restart: its jobs lose it (its old
// values are gone) and it serves again. The controller believes a restart
// only once it has asked the node over the data plane (wire.OpIncarnation);
// the node answers on its reserve of connection slots beyond MaxConns
// (dataplane's reserve.go). Before the reserve it refused that connection
// at accept like any other over its MaxConns: the registration was refused
// ("cannot confirm") every time the agent retried, the job kept the empty
// node in its map (its keys read "not found" instead of "lost"), and the
// node never registered.
func TestRestartAtFullConnectionsTaken(t *testing.T) {
	c, j, _ := twoNodeJob(t, "fullrestart")
	victim := j.Map().Nodes[0].Addr
	c.nodeAt(victim).stop()

	d, err := dataplane.NewDRAM(16<<20, dataplane.DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nd, err := dataplane.NewNode(dataplane.NodeConfig{AwaitSync: true, Listen: victim, DRAM: d,
		Guard: dataplane.NewTokenGuard(testSecret), Net: netio.Config{Loops: 1, MaxConns: 1, Logger: quietLog}})
	if err != nil {
		d.Close()
		t.Fatal(err)
	}
	// A client's connection takes the node's one connection slot.
	hold, err := net.Dial("tcp", victim)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	rctx, cancel := context.WithCancel(context.Background())
	cn := &clusterNode{node: nd, tier: d, cancel: cancel, done: make(chan struct{})}
	mc := metaclient.New(c.addr, metaclient.Options{Secret: testSecret, Logger: quietLog})
	go func() {
		defer close(cn.done)
		defer mc.Close()
		_ = agent.Run(rctx, agent.Config{Node: nd, Addr: victim, Controller: mc, Logger: quietLog})
	}()
	c.nodes = append(c.nodes, cn)

	deadline := time.Now().Add(15 * time.Second)
	for {
		m, err := c.ctl.GetMap(j.ID(), j.Token())
		if err != nil {
			t.Fatal(err)
		}
		lost := false
		for _, l := range m.Lost {
			lost = lost || l.Addr == victim
		}
		active := false
		for _, ns := range c.ctl.Status().Nodes {
			active = active || ns.Addr == victim && ns.State == wire.NodeActive
		}
		if lost && active {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("15 s after %s restarted with its connections taken: lost from the job %v, active %v (map %+v); "+
				"the controller cannot reach it to confirm the restart", victim, lost, active, m)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
