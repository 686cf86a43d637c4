package pocket

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pocketstore/pocket/dataplane"
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
	nd, d := restartFull(t, c, victim)
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
	c.runAgent(nd, d, victim)
	if !restartSeen(t, c, j, victim, 10*time.Second) {
		st := nd.Stats().Net
		t.Fatalf("10 s after %s restarted with its connections taken and its reserve held by idle clients "+
			"from 4 addresses it has not registered (reserve open %d, reserved %d, reserve timeouts %d, evictions %d): "+
			"the controller's restart question never found a reserve slot", victim, st.ReserveOpen, st.Reserved, st.ReserveTimeouts, st.ReserveEvictions)
	}
}
