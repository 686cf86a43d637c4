package pocket

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// freezeProxy forwards TCP connections to a node until freeze: from then
// on it accepts connections and takes their bytes but passes nothing on,
// either way, and closes nothing, as a stopped process (SIGSTOP) whose
// kernel still accepts and buffers.
type freezeProxy struct {
	addr   string
	ln     net.Listener
	frozen atomic.Bool
	mu     sync.Mutex
	open   []net.Conn
}

func newFreezeProxy(t *testing.T, to string) *freezeProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezeProxy{addr: ln.Addr().String(), ln: ln}
	t.Cleanup(p.close)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", to)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.open = append(p.open, c, up)
			p.mu.Unlock()
			go p.copy(up, c)
			go p.copy(c, up)
		}
	}()
	return p
}

// close closes the listener and every connection: the address then
// refuses, as a process that has exited.
func (p *freezeProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.open {
		c.Close()
	}
}

// copy passes src's bytes to dst while not frozen, and swallows them once
// frozen.
func (p *freezeProxy) copy(dst, src net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.frozen.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// frozenKey adds to c a node behind a freezeProxy, registers a job through
// s, puts a key the new node owns, then freezes the node (its proxy passes
// nothing on, its heartbeats stop; it keeps its connections), and returns
// the job and the key.
func frozenKey(t *testing.T, c *testCluster, s *Store) (*Job, string) {
	t.Helper()
	var p *freezeProxy
	j, key := proxiedKey(t, c, s, "frozen", func(to string) string {
		p = newFreezeProxy(t, to)
		return p.addr
	})
	if err := j.Put(context.Background(), key, []byte("v")); err != nil {
		t.Fatal(err)
	}
	p.frozen.Store(true)
	c.nodes[len(c.nodes)-1].cancel()
	return j, key
}

// proxiedKey adds to c a node of 64 MiB whose clients reach it through
// the proxy that proxy starts (given the node's address, it returns its
// own), registers a job name through s, and returns the job and a key the
// proxied node owns.
func proxiedKey(t *testing.T, c *testCluster, s *Store, name string, proxy func(to string) string) (*Job, string) {
	t.Helper()
	nd, d := c.newNode(64 << 20)
	addr := proxy(nd.Addr().String())
	c.runAgent(nd, d, addr)
	c.awaitActive(len(c.nodes))
	j, err := s.RegisterJob(context.Background(), name, Hints{Lambdas: 40})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if k := fmt.Sprint("k", i); j.route([]byte(k), 0).addr == addr {
			return j, k
		}
	}
}

// TestFrozenNodeMapFetched (hostile trial): a node that stops without
// closing its connections is never refused, so its calls only time out.
// The controller marks it dead once its heartbeats stop; a Job whose
// calls to it had timed out must learn that and answer unavailable at
// once, as a Job opened anew does. Before, the Job never fetched the map
// after a timeout: every call to the node's keys waited out its caller's
// deadline, for good.
func TestFrozenNodeMapFetched(t *testing.T) {
	c := newTestCluster(t, 1, 64<<20)
	j, key := frozenKey(t, c, c.store())
	ctx := context.Background()
	timeouts, calls := 0, 0
	ok := waitUntil(10*time.Second, func() bool {
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		var err error
		if calls++; calls%2 == 0 {
			_, err = j.Get(cctx, key)
		} else {
			err = j.Put(cctx, key, []byte("w")) // never sent again: mapChanged does not fetch for it
		}
		switch {
		case errors.Is(err, ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded):
			return true
		case errors.Is(err, context.DeadlineExceeded):
			timeouts++
		default:
			t.Fatalf("call %d on the frozen node's key: %v", calls, err)
		}
		return false
	})
	if !ok {
		t.Fatalf("after %d timed-out calls over 10 s the Job still sends to the frozen node (map dead %v)", timeouts, j.Map().Dead)
	}
	if timeouts == 0 {
		t.Fatal("no call timed out: the proxy did not freeze the node")
	}
}

// TestFrozenNodeCallsEnd: calls without a deadline to a node that stops
// without closing its connections end, once the node has sent nothing for
// Config.Silence: a get answers unavailable (the controller has marked the
// node dead by then, or the get goes again and meets the silence again),
// and a put too. Before, both waited until interrupted: `pocket get` of a
// key on a frozen node (SIGSTOP) hung even after the controller had
// marked the node dead.
func TestFrozenNodeCallsEnd(t *testing.T) {
	c := newTestCluster(t, 1, 64<<20)
	ctx := context.Background()
	s, err := Dial(ctx, c.addr, Config{ChunkSize: 1 << 20, Silence: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	j, key := frozenKey(t, c, s)
	for _, op := range []string{"get", "put"} {
		done := make(chan error, 1)
		start := time.Now()
		go func() {
			if op == "get" {
				_, err := j.Get(ctx, key)
				done <- err
				return
			}
			done <- j.Put(ctx, key, []byte("w"))
		}()
		select {
		case err := <-done:
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("%s on the frozen node's key: %v; want unavailable", op, err)
			}
			t.Logf("%s ended after %v: %v", op, time.Since(start).Round(time.Millisecond), err)
		case <-time.After(20 * time.Second):
			t.Fatalf("%s without a deadline still waits on the frozen node after 20 s", op)
		}
	}
}
