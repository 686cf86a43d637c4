package netio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// revHandler: "now" proves the connection for owner "a" (ProveFor) and is
// answered at once; "who" is answered with the loop's index; "later" is work under way, answered (its promise kept)
// after wait; "drop" is a promise the handler takes back in OnEOF (as the
// node does for a streamed get's header or a lane request not begun);
// "big" queues 16 MiB; "bye" makes OnData fail. It counts OnEOF calls,
// records each connection's loop, when it last kept a "later" promise and
// when a connection that made one last closed (unix nanoseconds, 0: not
// yet).
type revHandler struct {
	*echoHandler
	wait  time.Duration
	eofs  sync.Map // conn id -> *atomic.Int32
	loops sync.Map // conn id -> loop index
	made  sync.Map // conn id -> true once it made a "later" promise
	kept  atomic.Int64
	shut  atomic.Int64
}

type revState struct{ droppable int }

var errBye = errors.New("bye")

func (h *revHandler) OnOpen(c *Conn) {
	h.loops.Store(c.ID(), c.Loop().Index())
	c.SetContext(&revState{})
	h.echoHandler.OnOpen(c)
}

func (h *revHandler) OnEOF(c *Conn) {
	v, _ := h.eofs.LoadOrStore(c.ID(), new(atomic.Int32))
	v.(*atomic.Int32).Add(1)
	if st := c.Context().(*revState); st.droppable > 0 {
		c.Expect(-st.droppable)
		st.droppable = 0
	}
}

func (h *revHandler) OnData(c *Conn, in []byte) (int, error) {
	st := c.Context().(*revState)
	used := 0
	for n := frameLen(in); n > 0; n = frameLen(in[used:]) {
		reply := append([]byte(nil), in[used:used+n]...)
		used += n
		switch string(reply[4:]) {
		case "now":
			c.ProveFor([]byte("a"))
			c.Write(reply)
		case "who":
			c.Write(frame([]byte{byte(c.Loop().Index())}))
		case "big":
			c.Write(frame(make([]byte, 16<<20)))
		case "bye":
			return used, errBye
		case "drop":
			c.Expect(n)
			st.droppable += n
		default: // "later"; "slower" waits twice as long
			h.made.Store(c.ID(), true)
			c.Expect(n)
			wait := h.wait
			if string(reply[4:]) == "slower" {
				wait *= 2
			}
			time.AfterFunc(wait, func() {
				c.Post(func(c *Conn) {
					h.kept.Store(time.Now().UnixNano())
					c.Expect(-len(reply))
					c.Write(reply)
				})
			})
		}
	}
	return used, nil
}

func (h *revHandler) OnClose(c *Conn, err error) {
	if _, ok := h.made.Load(c.ID()); ok {
		h.shut.Store(time.Now().UnixNano())
	}
	h.echoHandler.OnClose(c, err)
}

// keptBeforeClose fails t unless a promise was kept and the connection
// that made it closed after that.
func (h *revHandler) keptBeforeClose(t *testing.T) {
	t.Helper()
	waitFor(t, "the connection that promised closed", func() bool { return h.shut.Load() != 0 })
	if kept, closed := h.kept.Load(), h.shut.Load(); kept == 0 || kept > closed {
		t.Fatalf("closed before its promise was kept (kept %d, closed %d)", kept, closed)
	}
}

func (h *revHandler) eofCount(id uint64) int32 {
	v, ok := h.eofs.Load(id)
	if !ok {
		return 0
	}
	return v.(*atomic.Int32).Load()
}

// nowConn dials s and sends "now" (proving the connection for "a").
func nowConn(t *testing.T, s *Server) net.Conn {
	t.Helper()
	c := dial(t, s)
	roundTrip(t, c, frame([]byte("now")), frame([]byte("now")))
	return c
}

// served reports whether c answers "now" (false: the server closed it).
func served(c net.Conn) bool {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(frame([]byte("now"))); err != nil {
		return false
	}
	buf := make([]byte, len(frame([]byte("now"))))
	_, err := io.ReadFull(c, buf)
	return err == nil
}

// closedAt waits for h's OnClose and returns when it came and its error.
func closedAt(t *testing.T, h *echoHandler) (int64, error) {
	t.Helper()
	select {
	case err := <-h.closed:
		return time.Now().UnixNano(), err
	case <-time.After(20 * time.Second):
		t.Fatal("the connection was not closed")
		return 0, nil
	}
}

// TestServerCloseWaitsForPromises: a request whose reply is promised for
// 800 ms later (a device write under way), then a frame OnData fails on.
// The server closes the connection only once the promise is kept, and
// the reply goes out before the close. Before, it closed at once: the
// client saw the close 800 ms before the work it had sent landed.
func TestServerCloseWaitsForPromises(t *testing.T) {
	h := &revHandler{echoHandler: newEcho(), wait: 800 * time.Millisecond}
	s := start(t, Config{Loops: 1}, h)
	c := dial(t, s)
	want := frame([]byte("later"))
	if _, err := c.Write(append(append([]byte(nil), want...), frame([]byte("bye"))...)); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, c)
	seen := time.Now().UnixNano()
	kept := h.kept.Load()
	if kept == 0 || kept > seen {
		t.Fatalf("the client saw the close before the promise was kept (kept %d, close seen %d)", kept, seen)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %q before the close, want the promised reply %q", got, want)
	}
	if _, err := closedAt(t, h.echoHandler); !errors.Is(err, errBye) {
		t.Fatalf("OnClose got %v, want OnData's error", err)
	}
}

// TestWriteTimeoutWaitsForPromises: a peer that never reads (16 MiB of
// output queued) with a reply promised for 1.5 s: WriteTimeout (200 ms)
// resets it once the promise is kept, not before. Before, it was reset at
// about 300 ms, 1.2 s before the work it had sent landed. Its queued output,
// never to be sent, goes at the timeout, not at the close (on 78fb8a1 the
// 16 MiB stayed queued until the close, a review).
func TestWriteTimeoutWaitsForPromises(t *testing.T) {
	h := &revHandler{echoHandler: newEcho(), wait: 1500 * time.Millisecond}
	s := start(t, Config{Loops: 1, WriteTimeout: 200 * time.Millisecond}, h)
	c := dial(t, s)
	c.(*net.TCPConn).SetReadBuffer(4 << 10)
	if _, err := c.Write(append(frame([]byte("big")), frame([]byte("later"))...)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the write timeout", func() bool { return h.eofCount(1) == 1 })
	if q := s.Stats().Queued; h.kept.Load() == 0 && q > 1<<20 {
		t.Fatalf("%d bytes still queued for a connection being reset", q)
	}
	closed, err := closedAt(t, h.echoHandler)
	if !errors.Is(err, ErrWriteTimeout) {
		t.Fatalf("OnClose got %v, want ErrWriteTimeout", err)
	}
	if kept := h.kept.Load(); kept == 0 || kept > closed {
		t.Fatalf("closed before the promise was kept (kept %d, closed %d)", kept, closed)
	}
	waitFor(t, "the connection closed", func() bool { return s.Stats().Open == 0 })
}

// TestServerCloseWithoutPromisesIsAtOnce: with nothing promised the
// server's close is what it was, at the end of the pass.
func TestServerCloseWithoutPromisesIsAtOnce(t *testing.T) {
	h := &revHandler{echoHandler: newEcho(), wait: time.Hour}
	s := start(t, Config{Loops: 1}, h)
	c := dial(t, s)
	if _, err := c.Write(frame([]byte("bye"))); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, c); len(got) != 0 {
		t.Fatalf("got %d bytes", len(got))
	}
	if _, err := closedAt(t, h.echoHandler); !errors.Is(err, errBye) {
		t.Fatalf("OnClose got %v, want OnData's error", err)
	}
}

// TestEvictionWaitsForPromises: a proven connection over its owner's
// share (MaxProvenPerOwner), with a reply promised for 1 s, is the one a
// newcomer at MaxConns evicts: it closes once the promise is kept, and its
// slot is free then. Before, it was reset at once, a second before the
// work it had sent landed.
func TestEvictionWaitsForPromises(t *testing.T) {
	h := &revHandler{echoHandler: newEcho(), wait: time.Second}
	s := start(t, Config{Loops: 1, MaxConns: 2, MaxProvenPerOwner: 1, EvictUnproven: true}, h)
	_ = nowConn(t, s) // a's one proven connection
	a2 := dial(t, s)
	time.Sleep(UnprovenGrace + 100*time.Millisecond)
	roundTrip(t, a2, frame([]byte("now")), frame([]byte("now"))) // over a's share
	if _, err := a2.Write(frame([]byte("later"))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the promise made", func() bool { _, ok := h.made.Load(uint64(2)); return ok })
	_ = dial(t, s) // a newcomer at MaxConns: evicts a2, refused while a2's work lasts
	waitFor(t, "the eviction", func() bool { return s.Stats().UnprovenEvictions == 1 })
	h.keptBeforeClose(t)
	if !served(dial(t, s)) {
		t.Fatal("a newcomer was refused after the evicted connection closed")
	}
}

// TestRetiringHeadLeavesTheList: three proven connections over their
// owner's share, o1 (oldest) and o2 with work under way for 3 s, o3 idle.
// The first newcomer at MaxConns evicts o3 (an idle victim first: its
// slot is free at once, no work is cut) and is served; the second retires
// o1, the third o2, both refused while that work lasts. On 78fb8a1 (a
// review) o1 stayed at the head of the overOwner list, retiring, and was
// picked again by every later newcomer: o2 was never evicted.
func TestRetiringHeadLeavesTheList(t *testing.T) {
	h := &revHandler{echoHandler: newEcho(), wait: 3 * time.Second}
	s := start(t, Config{Loops: 1, MaxConns: 4, MaxProvenPerOwner: 1, EvictUnproven: true}, h)
	_ = nowConn(t, s)   // a's one proven connection
	o1 := nowConn(t, s) // over a's share
	o2 := nowConn(t, s) // over a's share
	o3 := nowConn(t, s) // over a's share
	time.Sleep(UnprovenGrace + 100*time.Millisecond)
	busy := append(frame([]byte("later")), frame([]byte("now"))...)
	roundTrip(t, o1, busy, frame([]byte("now")))
	roundTrip(t, o2, busy, frame([]byte("now")))
	if n1 := dial(t, s); !served(n1) {
		t.Fatalf("first newcomer refused while o3 (over its owner's share, nothing promised) was evictable; UnprovenEvictions %d", s.Stats().UnprovenEvictions)
	}
	if served(o3) {
		t.Fatal("o3 was not evicted")
	}
	_ = served(dial(t, s)) // retires o1
	_ = served(dial(t, s)) // retires o2
	if ev := s.Stats().UnprovenEvictions; ev != 3 {
		t.Fatalf("UnprovenEvictions %d, want 3", ev)
	}
	if served(o2) { // returns once o2's work has ended and it closed
		t.Fatal("o2 was not evicted")
	}
}

// TestEvictionClosedAtOnceServesTheNewcomer: the victim's only promise
// is one its handler takes back in OnEOF (the node's streamed-get header,
// lane requests not begun): retire closes it at once and the newcomer is
// served (refused on 78fb8a1, a review).
func TestEvictionClosedAtOnceServesTheNewcomer(t *testing.T) {
	h := &revHandler{echoHandler: newEcho(), wait: time.Hour}
	s := start(t, Config{Loops: 1, MaxConns: 2, MaxProvenPerOwner: 1, EvictUnproven: true}, h)
	_ = nowConn(t, s) // a's one proven connection
	o1 := dial(t, s)
	roundTrip(t, o1, append(frame([]byte("now")), frame([]byte("drop"))...), frame([]byte("now")))
	time.Sleep(UnprovenGrace + 100*time.Millisecond)
	n1 := dial(t, s)
	ok := served(n1)
	waitFor(t, "o1 closed", func() bool { return s.Stats().Closed >= 1 })
	if !ok {
		t.Fatalf("newcomer refused although the evicted connection closed at once (open now %d of MaxConns 2)", s.Stats().Open)
	}
}

// TestEvictElsewhereStaysNearMaxConns: with two loops, a proven
// connection over its owner's share, with work under way, on loop X: a
// burst of newcomers opens at most one past MaxConns (the evicted one,
// until its work ends). On 78fb8a1 (a review) the retiring head stayed
// listed, each newcomer on the other loop claimed it (evictElsewhere) and
// opened over MaxConns: 7-12 open.
func TestEvictElsewhereStaysNearMaxConns(t *testing.T) {
	h := &revHandler{echoHandler: newEcho(), wait: 3 * time.Second}
	const maxConns = 2
	s := start(t, Config{Loops: 2, MaxConns: maxConns, MaxProvenPerOwner: 1, EvictUnproven: true}, h)
	_ = nowConn(t, s) // a's one proven connection
	a2 := dial(t, s)
	time.Sleep(UnprovenGrace + 100*time.Millisecond)
	roundTrip(t, a2, frame([]byte("now")), frame([]byte("now"))) // over a's share
	roundTrip(t, a2, append(frame([]byte("later")), frame([]byte("now"))...), frame([]byte("now")))
	var peak int64
	for i := 0; i < 16; i++ { // all within UnprovenGrace: none evicts another newcomer
		_ = dial(t, s)
		time.Sleep(8 * time.Millisecond)
		peak = max(peak, s.Stats().Open)
	}
	if peak > maxConns+1 {
		t.Fatalf("open connections reached %d with MaxConns %d", peak, maxConns)
	}
}

// TestShutdownWhileRetiring: Server.Close with a connection
// retiring closes it once, at once.
func TestShutdownWhileRetiring(t *testing.T) {
	h := &revHandler{echoHandler: newEcho(), wait: time.Hour}
	s, err := Listen("127.0.0.1:0", Config{Loops: 1}, h)
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, s)
	if _, err := c.Write(append(frame([]byte("later")), frame([]byte("bye"))...)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "retiring", func() bool { return h.eofCount(1) == 1 })
	before := s.Stats().Passes
	time.Sleep(300 * time.Millisecond)
	if p := s.Stats().Passes - before; p > 2 {
		t.Fatalf("%d passes while one connection retired", p)
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Server.Close hung with a connection retiring")
	}
	if err := <-h.closed; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("OnClose got %v", err)
	}
	h.checkOnce(t)
	if st := s.Stats(); st.Open != 0 || st.Queued != 0 {
		t.Fatalf("after Close: open %d queued %d", st.Open, st.Queued)
	}
}

// TestRetiringPeerResetNoSpin: the peer resets a connection
// that is retiring: the loop is not woken for it (out of the epoll set).
func TestRetiringPeerResetNoSpin(t *testing.T) {
	h := &revHandler{echoHandler: newEcho(), wait: 1200 * time.Millisecond}
	s := start(t, Config{Loops: 1}, h)
	c := dial(t, s)
	if _, err := c.Write(append(frame([]byte("later")), frame([]byte("bye"))...)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "retiring", func() bool { return h.eofCount(1) == 1 })
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
	before := s.Stats().Passes
	time.Sleep(400 * time.Millisecond)
	if p := s.Stats().Passes - before; p > 2 {
		t.Fatalf("%d passes for a reset retiring connection", p)
	}
	waitFor(t, "closed", func() bool { return s.Stats().Open == 0 })
	h.checkOnce(t)
}

// TestBusyOverShareFreesSlotsWhenItsWorkEnds: a job over its share keeps
// work under way (2 s) on each of its extra connections (o1, o2). Two
// newcomers at MaxConns each retire one and are refused meanwhile; no
// more than MaxConns are ever open; once the work ends both are closed
// and a newcomer is served.
func TestBusyOverShareFreesSlotsWhenItsWorkEnds(t *testing.T) {
	h := &revHandler{echoHandler: newEcho(), wait: 2 * time.Second}
	const maxConns = 3
	s := start(t, Config{Loops: 1, MaxConns: maxConns, MaxProvenPerOwner: 1, EvictUnproven: true}, h)
	_ = nowConn(t, s) // a's one proven connection
	o1 := nowConn(t, s)
	o2 := nowConn(t, s)
	time.Sleep(UnprovenGrace + 100*time.Millisecond)
	busy := append(frame([]byte("later")), frame([]byte("now"))...)
	roundTrip(t, o1, busy, frame([]byte("now")))
	roundTrip(t, o2, busy, frame([]byte("now")))
	for range 2 {
		_ = served(dial(t, s))
		if open := realOpen(s); open > maxConns {
			t.Fatalf("%d connections open, MaxConns %d", open, maxConns)
		}
	}
	waitFor(t, "both evicted connections closed", func() bool { return !served(o1) && !served(o2) })
	if !served(dial(t, s)) {
		t.Fatal("a newcomer was refused after the evictions' work ended")
	}
}

// realOpen is the connections the server holds a descriptor for:
// accepted and not closed (no reserve in these tests).
func realOpen(s *Server) int64 {
	st := s.Stats()
	return int64(st.Accepted) - int64(st.Closed)
}

// TestRetiringOpenIsCounted: a proven connection over its owner's share,
// with work under way, evicted for a newcomer at MaxConns, is counted in
// Stats().Open while it retires. On a1242b8 (a review) its slot was freed
// at once and Open said MaxConns while MaxConns+1 were open.
func TestRetiringOpenIsCounted(t *testing.T) {
	h := &revHandler{echoHandler: newEcho(), wait: 3 * time.Second}
	s := start(t, Config{Loops: 1, MaxConns: 2, MaxProvenPerOwner: 1, EvictUnproven: true}, h)
	_ = nowConn(t, s)   // a's one proven connection
	a2 := nowConn(t, s) // over a's share
	time.Sleep(UnprovenGrace + 100*time.Millisecond)
	roundTrip(t, a2, append(frame([]byte("later")), frame([]byte("now"))...), frame([]byte("now")))
	_ = served(dial(t, s))
	waitFor(t, "the eviction", func() bool { return s.Stats().UnprovenEvictions == 1 })
	if open, real := s.Stats().Open, realOpen(s); open != real {
		t.Fatalf("Stats().Open %d, but %d connections are open (accepted - closed)", open, real)
	}
}

// churn: one peer (127.0.0.1) with a valid "token" for one owner
// (MaxProvenPerOwner 1) fills MaxConns with connections over its share,
// then each round starts work (10 s) on every one of them and dials as
// many newcomers, which evict them (past UnprovenGrace) and prove over
// the share in turn. cfg.Loops defaults to 1. It returns the most
// descriptors open at once (accepted - closed, sampled every 2 ms) and
// those open at the end.
func churn(t *testing.T, cfg Config, rounds int) (peak, final int64) {
	h := &revHandler{echoHandler: newEcho(), wait: 10 * time.Second}
	cfg.Loops, cfg.MaxProvenPerOwner, cfg.EvictUnproven = max(cfg.Loops, 1), 1, true
	s := start(t, cfg, h)
	var pk atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			pk.Store(max(pk.Load(), realOpen(s)))
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	_ = nowConn(t, s) // a's one proven connection
	busy := append(frame([]byte("later")), frame([]byte("now"))...)
	var gen []net.Conn
	for i := 0; i < cfg.MaxConns-1; i++ {
		gen = append(gen, nowConn(t, s)) // over a's share
	}
	for r := 0; r < rounds; r++ {
		time.Sleep(UnprovenGrace + 100*time.Millisecond)
		for _, c := range gen {
			roundTrip(t, c, busy, frame([]byte("now"))) // work under way
		}
		var next []net.Conn
		for range gen {
			c := dial(t, s)
			if served(c) { // evicts one of gen, then over a's share
				next = append(next, c)
			}
		}
		if gen = next; len(gen) == 0 {
			break
		}
	}
	close(stop)
	<-sampled
	st := s.Stats()
	final = realOpen(s)
	t.Logf("after %d rounds on %d loop(s): at most %d descriptors open, %d at the end (Open says %d), MaxConns %d, MaxConnsPerPeer %d, evictions %d",
		rounds, cfg.Loops, pk.Load(), final, st.Open, cfg.MaxConns, cfg.MaxConnsPerPeer, st.UnprovenEvictions)
	return pk.Load(), final
}

// TestChurnHoldsMaxConnsPerPeer: evicted connections stay counted for
// their peer until they close. On a1242b8 (a review) they gave back their
// per-peer count at once, and the peer exceeded MaxConnsPerPeer by 3 every
// 350 ms while its work lasted: 22 open with MaxConnsPerPeer 4 after 6
// rounds.
func TestChurnHoldsMaxConnsPerPeer(t *testing.T) {
	const perPeer = 4
	if peak, _ := churn(t, Config{MaxConns: 4, MaxConnsPerPeer: perPeer}, 6); peak > perPeer {
		t.Fatalf("one peer held %d connections, MaxConnsPerPeer %d", peak, perPeer)
	}
}

// TestChurnHoldsMaxConns: the same churn without a per-peer limit (as
// many peers, or a job's workers behind one NAT address, would): the
// descriptors held stay within MaxConns. On a1242b8 (a review) nothing but
// the handler's work bounded them: 50 open with MaxConns 8 after 2 s.
func TestChurnHoldsMaxConns(t *testing.T) {
	const maxConns = 8
	if peak, _ := churn(t, Config{MaxConns: maxConns}, 6); peak > maxConns {
		t.Fatalf("%d connections open with MaxConns %d", peak, maxConns)
	}
}

// TestChurnOnTwoLoopsHoldsMaxConns: the churn on two loops. A newcomer
// that claims a victim on the other loop (evictElsewhere) is opened at
// once, so a victim with work under way, retiring and keeping its slot,
// left it past MaxConns for as long as that work lasted: 13-16 open with
// MaxConns 8 on 9f14e38 (a review). Other loops now give up only victims
// with nothing promised; at most one over MaxConns, as before retire,
// while the other loop's eviction is under way.
func TestChurnOnTwoLoopsHoldsMaxConns(t *testing.T) {
	const maxConns = 8
	if peak, _ := churn(t, Config{Loops: 2, MaxConns: maxConns}, 6); peak > maxConns+1 {
		t.Fatalf("%d connections open with MaxConns %d on two loops", peak, maxConns)
	}
}

// TestReserveEvictionIsCounted: a reserve connection with work under way
// (1.5 s) evicted for its peer's next reserve connection stays counted in
// ReserveOpen while it retires. On a1242b8 (a review) its slot was freed
// at once: ReserveOpen said 1 with two reserve connections open.
func TestReserveEvictionIsCounted(t *testing.T) {
	h := &revHandler{echoHandler: newEcho(), wait: 1500 * time.Millisecond}
	s := start(t, Config{Loops: 1, MaxConns: 1, ReserveConns: 1, ReserveTimeout: 300 * time.Millisecond}, h)
	_ = nowConn(t, s)
	r1 := dial(t, s)
	roundTrip(t, r1, append(frame([]byte("later")), frame([]byte("now"))...), frame([]byte("now")))
	_ = served(dial(t, s))
	waitFor(t, "the eviction", func() bool { return s.Stats().ReserveEvictions == 1 })
	st := s.Stats()
	if open, real := st.Open+st.ReserveOpen, int64(st.Accepted)-int64(st.Closed); open != real {
		t.Fatalf("Open %d + ReserveOpen %d, but %d connections open", st.Open, st.ReserveOpen, real)
	}
}

// TestNoLeakAfterEvictionsResetsAndShutdown: busy evictions on two loops, reserve
// evictions, retires with reset and a shutdown in the middle of the work:
// afterwards every count is back to zero.
func TestNoLeakAfterEvictionsResetsAndShutdown(t *testing.T) {
	h := &revHandler{echoHandler: newEcho(), wait: 400 * time.Millisecond}
	s, err := Listen("127.0.0.1:0", Config{Loops: 2, MaxConns: 6, MaxProvenPerOwner: 1,
		EvictUnproven: true, ReserveConns: 4, ReserveTimeout: 300 * time.Millisecond, WriteTimeout: 200 * time.Millisecond}, h)
	if err != nil {
		t.Fatal(err)
	}
	var all []net.Conn
	defer func() {
		for _, c := range all {
			c.Close()
		}
	}()
	busy := append(frame([]byte("later")), frame([]byte("now"))...)
	for r := 0; r < 6; r++ {
		for i := 0; i < 8; i++ {
			c, err := net.Dial("tcp", s.Addr().String())
			if err != nil {
				// The churn refuses newcomers at MaxConns with a reset,
				// which may reach the dial itself (a CI run): a refused
				// connection is one outcome the counts below must hold for.
				continue
			}
			all = append(all, c)
			c.SetDeadline(time.Now().Add(time.Second))
			c.Write(busy)
		}
		time.Sleep(UnprovenGrace + 20*time.Millisecond)
	}
	st := s.Stats()
	t.Logf("before Close: accepted %d closed %d open %d reserveOpen %d evictions %d reserveEvictions %d",
		st.Accepted, st.Closed, st.Open, st.ReserveOpen, st.UnprovenEvictions, st.ReserveEvictions)
	s.Close()
	st = s.Stats()
	var claims, listed int64
	for _, l := range s.loops {
		claims += l.unproven.claims.Load() + l.overOwner.claims.Load()
		listed += l.unproven.n.Load() + l.overOwner.n.Load()
	}
	if st.Open != 0 || st.ReserveOpen != 0 || st.Queued != 0 || s.open.Load() != 0 || s.reserved.Load() != 0 ||
		len(s.peers.n) != 0 || len(s.rpeers.n) != 0 || len(s.owners.n) != 0 || st.Accepted != st.Closed || listed != 0 {
		t.Fatalf("after Close: open %d reserve %d queued %d peers %v rpeers %v owners %v accepted %d closed %d listed %d claims %d",
			s.open.Load(), s.reserved.Load(), s.queued.Load(), s.peers.n, s.rpeers.n, s.owners.n, st.Accepted, st.Closed, listed, claims)
	}
	t.Logf("claims left %d", claims)
}
