package dataplane

import (
	"net"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// TestPingFloodHoldsNoSlotFromTokens: peers with no token fill the node's
// connection slots and keep them past the idle timeout with pings (which
// need no token). A client with a valid token must still be served.
func TestPingFloodHoldsNoSlotFromTokens(t *testing.T) {
	const slots = 40
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", DRAM: connfloodDRAM(t), Guard: fakeGuard{},
		Net: netio.Config{Loops: 2, MaxConns: slots, IdleTimeout: time.Second}})
	ping := wire.AppendHeader(nil, &wire.Header{Op: wire.OpPing, ID: 1})
	var flood []net.Conn
	for range slots {
		c, err := net.Dial("tcp", n.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go func() { // take the replies
			b := make([]byte, 512)
			for {
				if _, err := c.Read(b); err != nil {
					return
				}
			}
		}()
		flood = append(flood, c)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			for _, c := range flood {
				c.Write(ping)
			}
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	time.Sleep(2500 * time.Millisecond) // past the idle timeout, twice
	served := 0
	var last error
	for range 5 {
		nc, err := net.Dial("tcp", n.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(3 * time.Second))
		c := client.NewConn(nc, client.ConnOptions{Job: []byte("j"), Token: []byte("ok-j")})
		c.SendPut([]byte("k"), []byte("v"), 0)
		c.Flush()
		r, err := c.Recv()
		switch {
		case err != nil:
			last = err
		case r.Code != 0:
			last = r.Err()
		default:
			served++
		}
		nc.Close()
		time.Sleep(100 * time.Millisecond)
	}
	st := n.Stats().Net
	t.Logf("net stats: open %d refused %d reserved %d idle closed %d", st.Open, st.Refused, st.Reserved, st.IdleClosed)
	if served != 5 {
		t.Fatalf("%d of 5 puts with a valid token served while %d tokenless connections pinged; last error: %v", served, slots, last)
	}
}

func connfloodDRAM(t *testing.T) *DRAM {
	d, err := NewDRAM(16<<20, DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}
