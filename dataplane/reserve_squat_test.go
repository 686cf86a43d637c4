package dataplane

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/internal/nettest"
	"github.com/pocketstore/pocket/wire"
)

// askLikeTheController asks n's incarnation as the controller does
// (controller.askIncarnation): on a new connection, again every 50 ms
// while the connection is refused or closed unanswered, for 1 s.
func askLikeTheController(n *Node, nonce []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	cl := client.New(client.Options{ConnsPerNode: 1, DialTimeout: time.Second})
	defer cl.Close()
	for {
		_, _, err := cl.Incarnation(ctx, n.Addr().String(), nonce)
		if !errors.Is(err, wire.ErrUnavailable) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestReserveHeldByIdleClientsOfFourAddresses (hostile review of d95de59,
// abf8515 and ce57117): idle clients from four addresses hold the whole
// reserve (16 slots, 4 per address), each connection redialled the
// moment the node closes it after ReserveTimeout (1 s); they send nothing
// and need no token. The controller's restart question, asked as
// controller.askIncarnation asks it (again every 50 ms for 1 s), then
// never finds a free slot: a node whose MaxConns is taken cannot have its
// restart confirmed, what the reserve is for. A flood of busy clients
// from 32 addresses (each holding a slot for one round trip) leaves the
// question answered 10 times out of 10; idle squatting, which holds a
// slot 1 s for a single connect, is the hole. With three addresses (12
// slots) every question is answered. Fails every run on 0ab9499.
func TestReserveHeldByIdleClientsOfFourAddresses(t *testing.T) {
	n, _ := fullNode(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	nettest.Squat(n.Addr().String(), []string{"127.0.2.1", "127.0.2.2", "127.0.2.3", "127.0.2.4"}, 4, stop, &wg)
	defer func() {
		close(stop)
		wg.Wait()
	}()
	for deadline := time.Now().Add(5 * time.Second); n.Stats().Net.ReserveOpen < DefaultReserveConns; {
		if time.Now().After(deadline) {
			t.Fatalf("squatters hold %d reserve slots, want %d", n.Stats().Net.ReserveOpen, DefaultReserveConns)
		}
		time.Sleep(10 * time.Millisecond)
	}
	const questions = 5
	failed := 0
	var last error
	for i := 0; i < questions; i++ {
		if err := askLikeTheController(n, []byte("controller-nonce")); err != nil {
			failed, last = failed+1, err
		}
	}
	if failed > 0 {
		st := n.Stats().Net
		t.Fatalf("%d of %d restart questions unanswered while idle clients of 4 addresses squat on the reserve "+
			"(reserve open %d, reserved %d, reserve timeouts %d); last: %v",
			failed, questions, st.ReserveOpen, st.Reserved, st.ReserveTimeouts, last)
	}
}
