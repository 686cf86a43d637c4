package dataplane

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/netio"
)

// TestEvictionReachesEveryLoop: tokenless peers hold every slot of a node
// with two event loops; clients with a valid token then arrive one by one
// and stay. Each must take the slot of a tokenless connection as long as
// one is open, whichever loop the kernel hands the newcomer to: MaxConns
// counts the connections of every loop. The eviction must not look only
// at the newcomer's loop, whose tokenless connections run out first.
func TestEvictionReachesEveryLoop(t *testing.T) {
	const slots = 40
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", DRAM: connfloodDRAM(t), Guard: fakeGuard{},
		Net: netio.Config{Loops: 2, MaxConns: slots}})
	var floodOpen atomic.Int32
	for range slots {
		c, err := net.Dial("tcp", n.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		floodOpen.Add(1)
		go func() {
			b := make([]byte, 64)
			for {
				if _, err := c.Read(b); err != nil {
					floodOpen.Add(-1)
					return
				}
			}
		}()
	}
	time.Sleep(400 * time.Millisecond) // past UnprovenGrace
	served, refused, refusedWithFlood := 0, 0, 0
	for i := 0; i < slots; i++ {
		nc, err := net.Dial("tcp", n.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(3 * time.Second))
		c := client.NewConn(nc, client.ConnOptions{Job: []byte("j"), Token: []byte("ok-j")})
		c.SendPut([]byte("k"), []byte("v"), 0)
		c.Flush()
		r, err := c.Recv()
		time.Sleep(20 * time.Millisecond) // let the evicted flood connection see its reset
		switch {
		case err == nil && r.Code == 0:
			served++
		default:
			refused++
			if floodOpen.Load() > 0 {
				refusedWithFlood++
				t.Logf("client %d refused (%v %v) while %d tokenless connections hold slots", i, err, r.Err(), floodOpen.Load())
			}
		}
		nc.SetDeadline(time.Time{})
	}
	t.Logf("served %d, refused %d (%d of them while tokenless connections were open); tokenless left %d", served, refused, refusedWithFlood, floodOpen.Load())
	if refusedWithFlood > 0 {
		t.Fatalf("%d clients with a valid token refused at MaxConns while tokenless connections older than UnprovenGrace held slots", refusedWithFlood)
	}
}
