package pocket

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/dataplane/agent"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// squatReserve keeps per idle connections open to addr from each of the
// loopback addresses ips, each redialled as soon as the node closes it
// (a refused one after a short pause), until stop closes; it returns when
// every goroutine has ended.
func squatReserve(addr string, ips []string, per int, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for _, ip := range ips {
		for i := 0; i < per; i++ {
			wg.Add(1)
			go func(ip string) {
				defer wg.Done()
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: time.Second}
				buf := make([]byte, 1)
				for {
					select {
					case <-stop:
						return
					default:
					}
					nc, err := d.Dial("tcp", addr)
					if err != nil {
						time.Sleep(5 * time.Millisecond)
						continue
					}
					start := time.Now()
					// Hold it until the node closes it (ReserveTimeout), or stop.
					go func() {
						<-stop
						nc.Close()
					}()
					nc.Read(buf)
					nc.Close()
					if time.Since(start) < 10*time.Millisecond {
						time.Sleep(2 * time.Millisecond) // refused at accept: do not spin
					}
				}
			}(ip)
		}
	}
	return &wg
}

// TestRestartWithReserveSquattedFromFourAddresses (hostile review of
// d95de59, abf8515 and ce57117): the reserve of 16 connection slots that
// lets a full node answer its controller's restart question is held
// entirely by idle clients from four addresses (4 slots each, the
// per-peer quarter; here 127.0.0.2-5, in a cloud four lambdas' or hosts'
// addresses, or four /64s of one IPv6 client), each redialled the moment
// the node closes it after ReserveTimeout. The controller's question
// (retried every 50 ms for ProbeTimeout) never finds a free slot, so a
// node restarted while its MaxConns is taken is refused 'cannot confirm'
// on every try and never registers: what the reserve was added to stop.
// Nothing these clients send needs a token or the secret: they only
// connect. Fails every run on 0ab9499.
func TestRestartWithReserveSquattedFromFourAddresses(t *testing.T) {
	c, j, _ := twoNodeJob(t, "squatreserve")
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
	// Idle squatters from four other addresses take the whole reserve.
	stop := make(chan struct{})
	wg := squatReserve(victim, []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"}, 4, stop)
	defer func() {
		close(stop)
		wg.Wait()
	}()
	for deadline := time.Now().Add(5 * time.Second); nd.Stats().Net.ReserveOpen < dataplane.DefaultReserveConns; {
		if time.Now().After(deadline) {
			t.Fatalf("squatters hold %d reserve slots, want %d", nd.Stats().Net.ReserveOpen, dataplane.DefaultReserveConns)
		}
		time.Sleep(10 * time.Millisecond)
	}

	rctx, cancel := context.WithCancel(context.Background())
	cn := &clusterNode{node: nd, tier: d, cancel: cancel, done: make(chan struct{})}
	mc := metaclient.New(c.addr, metaclient.Options{Secret: testSecret, Logger: quietLog})
	go func() {
		defer close(cn.done)
		defer mc.Close()
		_ = agent.Run(rctx, agent.Config{Node: nd, Addr: victim, Controller: mc, Logger: quietLog})
	}()
	c.nodes = append(c.nodes, cn)

	deadline := time.Now().Add(10 * time.Second)
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
			st := nd.Stats().Net
			t.Fatalf("10 s after %s restarted with its connections taken and its reserve held by idle clients "+
				"from 4 addresses it has not registered (reserve open %d, reserved %d, reserve timeouts %d): "+
				"the controller's restart question never found a reserve slot", victim, st.ReserveOpen, st.Reserved, st.ReserveTimeouts)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
