package pocket

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sort"
	"sync"
	"testing"
	"time"
)

// keepProxy forwards TCP connections to a node; while held it takes the
// client's bytes and keeps them (a stopped node's kernel does), and on
// release passes each connection's kept bytes on, the connection whose
// bytes came last first, a moment apart: an order in which a resumed
// node may serve them (one connection on one event loop, another on
// another).
type keepProxy struct {
	addr string
	ln   net.Listener
	mu   sync.Mutex
	held bool
	cs   []*heldConn // in accept order
}

type heldConn struct {
	up, down net.Conn
	kept     []byte
	last     time.Time // when its latest kept byte came
}

func newKeepProxy(t *testing.T, to string) *keepProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &keepProxy{addr: ln.Addr().String(), ln: ln}
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.cs {
			c.up.Close()
			c.down.Close()
		}
	})
	go func() {
		for {
			down, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", to)
			if err != nil {
				down.Close()
				continue
			}
			hc := &heldConn{up: up, down: down}
			p.mu.Lock()
			p.cs = append(p.cs, hc)
			p.mu.Unlock()
			go p.forward(hc)
			go func() { // the node's replies pass
				buf := make([]byte, 64<<10)
				for {
					n, err := up.Read(buf)
					if n > 0 {
						if _, werr := down.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return p
}

// forward passes the client's bytes on, or keeps them while held.
func (p *keepProxy) forward(hc *heldConn) {
	buf := make([]byte, 64<<10)
	for {
		n, err := hc.down.Read(buf)
		if n > 0 {
			p.mu.Lock()
			if p.held || len(hc.kept) > 0 {
				hc.kept, hc.last = append(hc.kept, buf[:n]...), time.Now()
				p.mu.Unlock()
			} else {
				p.mu.Unlock()
				if _, werr := hc.up.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *keepProxy) hold() {
	p.mu.Lock()
	p.held = true
	p.mu.Unlock()
}

// release passes on what was kept, the connection whose bytes came last
// first, 100 ms apart, and then forwards again.
func (p *keepProxy) release() {
	p.mu.Lock()
	cs := append([]*heldConn(nil), p.cs...)
	sort.Slice(cs, func(a, b int) bool { return cs[a].last.Before(cs[b].last) })
	p.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		p.mu.Lock()
		kept := cs[i].kept
		cs[i].kept = nil
		p.mu.Unlock()
		if len(kept) > 0 {
			cs[i].up.Write(kept)
			time.Sleep(100 * time.Millisecond)
		}
	}
	p.mu.Lock()
	p.held = false
	p.mu.Unlock()
}

// TestPutFailedOnSilenceDoesNotOvertakeTheNext: a put whose connection
// failed on a short Config.Silence fences its key (fenceSilent), so the
// Job's next put of it is sent only after the node's silence has lasted
// silenceFenceBound; a node that resumed before then has executed the
// first. Before, the next put went at once, and the node that resumed
// served it first and then the failed put, which overwrote the
// acknowledged value (a hostile trial: 5 of 12 rounds).
func TestPutFailedOnSilenceDoesNotOvertakeTheNext(t *testing.T) {
	old := silenceFenceBound
	silenceFenceBound = 2 * time.Second
	t.Cleanup(func() { silenceFenceBound = old })
	c := newTestCluster(t, 1, 64<<20)
	ctx := context.Background()
	s, err := Dial(ctx, c.addr, Config{ChunkSize: 1 << 20, Silence: 600 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var p *keepProxy
	j, key := proxiedKey(t, c, s, "silent", func(to string) string {
		p = newKeepProxy(t, to)
		return p.addr
	})
	if err := j.Put(ctx, key, []byte("first")); err != nil {
		t.Fatal(err)
	}
	p.hold()
	pctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	err = j.Put(pctx, key, []byte("failed"))
	cancel()
	if !errors.Is(err, ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("put to the held node: %v; want it failed on silence", err)
	}
	t.Logf("put to the held node: %v", err)
	released := make(chan struct{})
	go func() {
		time.Sleep(200 * time.Millisecond)
		p.release()
		close(released)
	}()
	if err := j.Put(ctx, key, []byte("last")); err != nil {
		t.Fatalf("the next put: %v", err)
	}
	<-released
	time.Sleep(300 * time.Millisecond) // whatever the node still had to read
	got, err := j.Get(ctx, key)
	if err != nil || !bytes.Equal(got, []byte("last")) {
		t.Fatalf("get after the acknowledged put of %q: %q, %v: the put failed on silence overtook it", "last", got, err)
	}
}
