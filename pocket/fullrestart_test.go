package pocket

import (
	"net"
	"testing"
	"time"

	"github.com/pocketstore/pocket/dataplane"
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
	nd, d := restartFull(t, c, victim)
	c.runAgent(nd, d, victim)
	if !restartSeen(t, c, j, victim, 15*time.Second) {
		t.Fatalf("15 s after %s restarted with its connections taken it is not lost from the job and active again: "+
			"the controller cannot reach it to confirm the restart", victim)
	}
}

// restartFull stops the cluster node at victim and starts an empty one in
// its place (its agent not yet running: the caller runs it with
// c.runAgent) whose one connection slot (MaxConns 1) a client's idle
// connection takes; both are closed at the test's end.
func restartFull(t *testing.T, c *testCluster, victim string) (*dataplane.Node, *dataplane.DRAM) {
	t.Helper()
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
	t.Cleanup(func() { nd.Close() })
	hold, err := net.Dial("tcp", victim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hold.Close() })
	return nd, d
}

// restartSeen waits up to within for the job to have lost victim and the
// controller to list it active again (its restart confirmed).
func restartSeen(t *testing.T, c *testCluster, j *Job, victim string, within time.Duration) bool {
	t.Helper()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
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
			return true
		}
	}
	return false
}
