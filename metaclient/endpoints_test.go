package metaclient_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/internal/nettest"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

func TestParseControllers(t *testing.T) {
	got, err := metaclient.ParseControllers(" 10.0.0.1:7070,ctl-b:7070 ,[::1]:7070,10.0.0.1:7070")
	if want := []string{"10.0.0.1:7070", "ctl-b:7070", "[::1]:7070"}; err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseControllers = %q, %v; want %q", got, err, want)
	}
	for _, bad := range []string{"", "a:1,", ",a:1", "a", "a:0", "a:65536", "a:x", ":7070"} {
		if _, err := metaclient.ParseControllers(bad); err == nil {
			t.Errorf("ParseControllers(%q) accepted", bad)
		}
	}
}

// follower answers every control frame "not leader", naming leader.
type follower struct {
	addr string
	ln   net.Listener
	hits atomic.Int32
	wg   sync.WaitGroup

	mu     sync.Mutex
	leader string
}

func startFollower(t *testing.T, leader string) *follower {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &follower{addr: ln.Addr().String(), ln: ln, leader: leader}
	f.wg.Add(1)
	go f.serve()
	t.Cleanup(func() { ln.Close(); f.wg.Wait() })
	return f
}

func (f *follower) setLeader(a string) {
	f.mu.Lock()
	f.leader = a
	f.mu.Unlock()
}

func (f *follower) serve() {
	defer f.wg.Done()
	for {
		conn, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer conn.Close()
			f.answer(conn)
		}()
	}
}

func (f *follower) answer(conn net.Conn) {
	r := bufio.NewReader(conn)
	lim := wire.ControlLimits()
	for {
		h, _, err := wire.ReadControlFrame(r, &lim, nil)
		if err != nil {
			return
		}
		f.hits.Add(1)
		f.mu.Lock()
		e := &wire.Error{Code: wire.CodeNotLeader, Msg: f.leader}
		f.mu.Unlock()
		conn.Write(wire.AppendControlFrame(nil, h.Op.Reply(), h.ID, e.Code, wire.NewEncoder().ErrorResponse(e)))
	}
}

func startLeader(t *testing.T) string {
	t.Helper()
	c, err := controller.New(controller.Config{Secret: secret, FirstJobSeq: 1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	a, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return a.String()
}

func status(cs *metaclient.Controllers, ctx context.Context) error {
	return cs.Do(ctx, func(c *metaclient.Client) error { _, err := c.Status(ctx); return err })
}

// TestControllersFindTheLeader: a dead controller is passed over, a
// follower's answer leads to the leader it names (not in the list), and
// later calls go straight there.
func TestControllersFindTheLeader(t *testing.T) {
	leader := startLeader(t)
	f := startFollower(t, leader)
	cs, err := metaclient.NewControllers([]string{nettest.RefusedAddr(t), f.addr}, metaclient.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := status(cs, ctx); err != nil {
		t.Fatal(err)
	}
	if cs.Leader() != leader || f.hits.Load() != 1 {
		t.Fatalf("leader %s after %d follower answers; want %s after 1", cs.Leader(), f.hits.Load(), leader)
	}
	for i := 0; i < 3; i++ {
		if err := status(cs, ctx); err != nil {
			t.Fatal(err)
		}
	}
	if f.hits.Load() != 1 {
		t.Fatalf("follower asked %d times; later calls should go to the leader", f.hits.Load())
	}
}

// TestControllersWaitOutAnElection: while no leader is elected, calls
// wait; once a follower names one, they reach it.
func TestControllersWaitOutAnElection(t *testing.T) {
	f1, f2 := startFollower(t, ""), startFollower(t, "")
	cs, _ := metaclient.NewControllers([]string{f1.addr, f2.addr}, metaclient.Options{Logger: quiet})
	defer cs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err := status(cs, ctx)
	cancel()
	var we *wire.Error
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &we) || we.Code != wire.CodeNotLeader {
		t.Fatalf("with no leader: %v; want the deadline and the last not-leader answer", err)
	}
	leader := startLeader(t)
	time.AfterFunc(200*time.Millisecond, func() { f2.setLeader(leader) })
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := status(cs, ctx); err != nil {
		t.Fatalf("after an election: %v", err)
	}
	if cs.Leader() != leader {
		t.Fatalf("leader %s; want %s", cs.Leader(), leader)
	}
}

// TestControllersAnswerReturned: the leader's own error answer is the
// call's, with no other controller asked.
func TestControllersAnswerReturned(t *testing.T) {
	leader := startLeader(t)
	f := startFollower(t, leader)
	cs, _ := metaclient.NewControllers([]string{leader, f.addr}, metaclient.Options{Logger: quiet})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := cs.Do(ctx, func(c *metaclient.Client) error { _, err := c.GetMap(ctx, "nojob-1", []byte("x")); return err })
	if errors.Is(err, context.DeadlineExceeded) || !errors.As(err, new(*wire.Error)) || f.hits.Load() != 0 {
		t.Fatalf("GetMap of an unknown job: %v after %d follower answers; want the leader's answer at once", err, f.hits.Load())
	}
	cs.Close()
	if err := status(cs, ctx); !errors.Is(err, metaclient.ErrClosed) {
		t.Fatalf("after Close: %v; want ErrClosed", err)
	}
	if _, err := metaclient.NewControllers(nil, metaclient.Options{}); err == nil {
		t.Fatal("NewControllers of no address accepted")
	}
}

// TestOneAddressFollowsTheLeader: a Client of one address that answers
// "not leader" (a standby) goes to the leader it names, for this call and
// the later ones, as a list would.
func TestOneAddressFollowsTheLeader(t *testing.T) {
	leader := startLeader(t)
	f := startFollower(t, leader)
	c := metaclient.New(f.addr, metaclient.Options{Logger: quiet})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 0; i < 3; i++ {
		if _, err := c.Status(ctx); err != nil {
			t.Fatalf("Status %d through a standby: %v", i, err)
		}
	}
	if c.Leader() != leader || f.hits.Load() != 1 {
		t.Fatalf("leader %s after %d standby answers; want %s after 1", c.Leader(), f.hits.Load(), leader)
	}
	// RetryFor < 0: the standby's own answer, as it is.
	raw := metaclient.New(f.addr, metaclient.Options{Logger: quiet, RetryFor: -1})
	defer raw.Close()
	var we *wire.Error
	if _, err := raw.Status(ctx); !errors.As(err, &we) || we.Code != wire.CodeNotLeader || we.Msg != leader {
		t.Fatalf("RetryFor -1 through a standby: %v; want its not-leader answer naming %s", err, leader)
	}
}

// TestOneAddressNoLeader: a standby with no leader to name is waited on
// until RetryFor, and the error says an election is in progress and to
// list every controller.
func TestOneAddressNoLeader(t *testing.T) {
	f := startFollower(t, "")
	c := metaclient.New(f.addr, metaclient.Options{Logger: quiet, RetryFor: 300 * time.Millisecond})
	defer c.Close()
	_, err := c.Status(context.Background())
	var we *wire.Error
	if err == nil || !strings.Contains(err.Error(), metaclient.NoLeaderHint) || !errors.As(err, &we) || we.Code != wire.CodeNotLeader {
		t.Fatalf("with no leader: %v; want the not-leader answer and %q", err, metaclient.NoLeaderHint)
	}
	if f.hits.Load() < 2 {
		t.Fatalf("standby asked %d times; the election should be waited on", f.hits.Load())
	}
}
