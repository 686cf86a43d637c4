package pocket

import (
	"sync"
	"testing"
	"time"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/internal/nettest"
)

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
	var wg sync.WaitGroup
	nettest.Squat(victim, []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"}, 4, stop, &wg)
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
