package netio

import (
	"fmt"
	"math/rand"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// listFault walks l's two eviction lists (on l's goroutine) and describes
// the first way they break connList's invariants: n and busy equal to the
// listed connections and those of them with expect > 0, over matching the
// list, onList set, born ordered, headBorn the head's. "" when they hold.
func (l *Loop) listFault() string {
	for _, x := range []struct {
		name string
		q    *connList
		over bool
	}{{"unproven", &l.unproven, false}, {"overOwner", &l.overOwner, true}} {
		var n, busy int64
		var prev *Conn
		for c := x.q.head; c != nil; c = c.unNext {
			n++
			if c.expect > 0 {
				busy++
			}
			if c.over != x.over || !c.onList || c.closed || c.retiring || c.unPrev != prev || c.loop != l {
				return fmt.Sprintf("loop %d %s: conn %d over %v onList %v closed %v retiring %v", l.idx, x.name, c.id, c.over, c.onList, c.closed, c.retiring)
			}
			if prev != nil && prev.born > c.born {
				return fmt.Sprintf("loop %d %s: not ordered by born", l.idx, x.name)
			}
			prev = c
		}
		if x.q.tail != prev {
			return fmt.Sprintf("loop %d %s: tail", l.idx, x.name)
		}
		if n != x.q.n.Load() || busy != x.q.busy.Load() {
			return fmt.Sprintf("loop %d %s: n %d (walked %d), busy %d (walked %d)", l.idx, x.name, x.q.n.Load(), n, x.q.busy.Load(), busy)
		}
		if hb := x.q.headBorn.Load(); (x.q.head == nil) != (hb == 0) || x.q.head != nil && hb != max(x.q.head.born, 1) {
			return fmt.Sprintf("loop %d %s: headBorn", l.idx, x.name)
		}
	}
	return l.peerListFault()
}

// peerListFault checks the loop's lists by peer (peerevict.go): each holds
// exactly the unproven list's connections of its peer, in its order.
func (l *Loop) peerListFault() string {
	want := map[netip.Addr][]*Conn{}
	for c := l.unproven.head; c != nil; c = c.unNext {
		if c.peer.IsValid() {
			want[c.peer] = append(want[c.peer], c)
		}
	}
	if len(want) != len(l.byPeer) {
		return fmt.Sprintf("loop %d: %d peers listed, %d with unproven connections", l.idx, len(l.byPeer), len(want))
	}
	for peer, q := range l.byPeer {
		var prev *Conn
		i := 0
		for c := q.head; c != nil; c = c.pNext {
			if i >= len(want[peer]) || c != want[peer][i] || !c.onPeer || c.pPrev != prev {
				return fmt.Sprintf("loop %d peer %v: entry %d is not the unproven list's", l.idx, peer, i)
			}
			prev = c
			i++
		}
		if i != len(want[peer]) || q.tail != prev {
			return fmt.Sprintf("loop %d peer %v: %d listed, %d unproven", l.idx, peer, i, len(want[peer]))
		}
	}
	return ""
}

// fuzzH drives Expect, ProveFor, Prove, Close and OnData errors from
// one-byte commands, and checks the lists of the loop at the end of every
// callback it gets (OnData, OnEOF, OnClose, posted tasks).
type fuzzH struct {
	mu     sync.Mutex
	faults []string
	checks atomic.Int64
	closed atomic.Int64
}

type fuzzSt struct {
	promised  []int // promises not yet taken back
	droppable int   // taken back in OnEOF
}

func (h *fuzzH) check(l *Loop) {
	h.checks.Add(1)
	if f := l.listFault(); f != "" {
		h.mu.Lock()
		if len(h.faults) < 10 {
			h.faults = append(h.faults, f)
		}
		h.mu.Unlock()
	}
}

func (h *fuzzH) OnOpen(c *Conn) { c.SetContext(&fuzzSt{}); h.check(c.Loop()) }

func (h *fuzzH) OnClose(c *Conn, err error) {
	h.closed.Add(1)
	// Promises taken back after the close change nothing.
	c.Expect(-7)
	h.check(c.Loop())
}

func (h *fuzzH) OnEOF(c *Conn) {
	st := c.Context().(*fuzzSt)
	if st.droppable != 0 {
		c.Expect(-st.droppable)
		st.droppable = 0
	}
	for len(st.promised) > 0 { // not begun: dropped, one at a time
		c.Expect(-st.promised[0])
		st.promised = st.promised[1:]
	}
	h.check(c.Loop())
}

func (h *fuzzH) OnData(c *Conn, in []byte) (int, error) {
	st := c.Context().(*fuzzSt)
	defer h.check(c.Loop())
	for i, b := range in {
		switch b {
		case 'e': // a promise kept later, on the loop (even after the close)
			n := 1 + rand.Intn(100)
			c.Expect(n)
			l := c.Loop()
			time.AfterFunc(time.Duration(rand.Intn(60))*time.Millisecond, func() {
				l.Post(func() { c.Expect(-n); h.check(l) })
			})
		case 'p': // a promise kept by a later command
			n := 1 + rand.Intn(100)
			c.Expect(n)
			st.promised = append(st.promised, n)
		case 'k':
			if len(st.promised) > 0 {
				c.Expect(-st.promised[0])
				st.promised = st.promised[1:]
			}
		case 'd':
			c.Expect(5)
			st.droppable += 5
		case 'n': // taken back more than promised: expect below zero for a while
			c.Expect(-3)
			st.droppable -= 3
		case 'a', 'b', 'c':
			c.ProveFor([]byte{b})
		case 'v':
			c.Prove()
		case 'x':
			c.Close()
		case 'y':
			return i + 1, errBye
		case 'w':
			c.Write([]byte{'.'})
		}
	}
	return len(in), nil
}

// TestBusyCountMatchesList: many clients on four loops send random mixes
// of promises (kept on the loop, by a later command, or dropped in OnEOF,
// some taken back below zero), proofs for three owners over their share
// (MaxProvenPerOwner 1), closes, failures, half-closes and resets, with
// MaxConns low enough that newcomers evict (on their own loop and on
// others). After every callback, and at the end, each loop's lists count
// their members and busy members exactly.
func TestBusyCountMatchesList(t *testing.T) {
	for _, perPeer := range []int{0, 12} {
		t.Run(fmt.Sprintf("MaxConnsPerPeer=%d", perPeer), func(t *testing.T) { busyCountMatchesList(t, perPeer) })
	}
}

// busyCountMatchesList is TestBusyCountMatchesList with a per-peer limit
// (0: the default, far above MaxConns; 12: below it, so newcomers evict
// their peer's connections, peerevict.go).
func busyCountMatchesList(t *testing.T, perPeer int) {
	h := &fuzzH{}
	s := start(t, Config{Loops: 4, MaxConns: 24, MaxConnsPerPeer: perPeer, MaxProvenPerOwner: 1, EvictUnproven: true}, h)
	const cmds = "eeppkkdnabcvwwwwwwwwxyabcabcpppeee"
	var wg sync.WaitGroup
	deadline := time.Now().Add(4 * time.Second)
	for g := 0; g < 40; g++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			r := rand.New(rand.NewSource(seed))
			for time.Now().Before(deadline) {
				c, err := net.Dial("tcp", s.Addr().String())
				if err != nil {
					continue
				}
				for k := r.Intn(12); k > 0; k-- {
					m := make([]byte, 1+r.Intn(3))
					for i := range m {
						m[i] = cmds[r.Intn(len(cmds))]
					}
					if _, err := c.Write(m); err != nil {
						break
					}
					time.Sleep(time.Duration(r.Intn(80)) * time.Millisecond)
				}
				switch r.Intn(3) {
				case 0:
					c.(*net.TCPConn).CloseWrite()
					time.Sleep(time.Duration(r.Intn(50)) * time.Millisecond)
				case 1:
					c.(*net.TCPConn).SetLinger(0)
				}
				c.Close()
			}
		}(int64(g))
	}
	wg.Wait()
	for i := 0; s.Stats().Open != 0; i++ {
		if i == 5000 {
			t.Fatalf("%d connections still open", s.Stats().Open)
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // the promises' timers
	for _, l := range s.loops {
		done := make(chan struct{})
		l.Post(func() { h.check(l); close(done) })
		<-done
	}
	st := s.Stats()
	var ev int64
	for _, l := range s.loops {
		ev += l.unproven.n.Load() + l.overOwner.n.Load() + l.unproven.busy.Load() + l.overOwner.busy.Load() + l.unproven.claims.Load()
	}
	t.Logf("checks %d, accepted %d, closed %d, refused %d, evictions %d, overOwner %d; lists and claims left %d",
		h.checks.Load(), st.Accepted, st.Closed, st.Refused, st.UnprovenEvictions, st.OverOwner, ev)
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.faults) > 0 || ev != 0 {
		t.Fatalf("list counts wrong (left %d): %v", ev, h.faults)
	}
}
