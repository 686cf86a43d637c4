package pocket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/internal/placement"
)

// Rigs for the tests of a reply lost after its request was executed
// (resend_*_test.go, *_lost_test.go): a proxy in front of a node that
// holds back one reply and then cuts its connection, and the jobs built
// around it.

// resendRig is a job of chunks of cs bytes whose one node n is reached
// through px, its map handed out by ctl, so that a test can change the map
// (changeMap) while a reply is held back, and doReq may send again.
type resendRig struct {
	n   *dropMoveNode
	px  *holdProxy
	ctl *fixedCtl
	j   *Job // "job-1" on n through px
}

// newResendRig starts one node and its proxy and opens the job on them.
// Everything closes when the test ends.
func newResendRig(t *testing.T, cs int64) *resendRig {
	t.Helper()
	n := dropMoveCluster(t, 1)[0]
	px := newHoldProxy(t, n.addr)
	ctl := &fixedCtl{}
	s := NewStore(ctl, Config{ChunkSize: cs})
	t.Cleanup(func() { s.Close() })
	j, err := s.OpenStatic("job-1", px.addr)
	if err != nil {
		t.Fatal(err)
	}
	ctl.set(j.Map())
	return &resendRig{n: n, px: px, ctl: ctl, j: j}
}

// changeMap bumps the job's map epoch at the controller and in the job, as
// another call's fetch of a changed map would.
func (r *resendRig) changeMap() {
	m := r.j.Map()
	m.Epoch++
	r.ctl.set(m)
	r.j.setMap(m)
}

// putBetween runs while the reply to a write of key through the rig's job
// is held back: it puts val under key from the other writer, changes the
// job's map (changeMap) and cuts the connection whose reply was held.
func (r *resendRig) putBetween(ctx context.Context, other *Job, key string, val []byte) error {
	if !r.px.waitHeld(10 * time.Second) {
		return errors.New("the node's reply to the call's write never came")
	}
	if err := other.Put(ctx, key, val); err != nil {
		return err
	}
	r.changeMap()
	r.px.cut()
	return nil
}

// oldOwnerRig is a job in the middle of a map change: its key's old
// owner a, draining, is reached through px, and its live owner b holds
// nothing of the key.
type oldOwnerRig struct {
	a, b *dropMoveNode
	px   *holdProxy
	j    *Job   // the job, its map changed
	key  string // a key of px's under the map before the change
}

// newOldOwnerRig starts two nodes and a proxy in front of the first, puts
// val under a key the proxied node owns, then marks that node draining in
// a new map beside the second, and checks the key's route: live owner b,
// old owner px. Everything closes when the test ends.
func newOldOwnerRig(t *testing.T, ctx context.Context, val []byte) *oldOwnerRig {
	t.Helper()
	ns := dropMoveCluster(t, 2)
	a, b := ns[0], ns[1]
	px := newHoldProxy(t, a.addr)
	whole := placement.NewSet(placementNodes([]Node{{Addr: px.addr, Weight: 1}, {Addr: b.addr, Weight: 1}}))
	key := ""
	for i := 0; key == ""; i++ {
		if k := fmt.Sprintf("obj-%d", i); whole.Node(whole.Pick([]byte(k), 0)).ID == px.addr {
			key = k
		}
	}
	j := staticJob(t, Config{}, []string{px.addr})
	if err := j.Put(ctx, key, val); err != nil {
		t.Fatal(err)
	}
	// The old owner drains: the key's live owner is b, its old owner a.
	m := j.Map()
	m.Nodes = []Node{{Addr: px.addr, Weight: 1}, {Addr: b.addr, Weight: 1}}
	m.Draining = map[string]bool{px.addr: true}
	m.Epoch++
	j.setMap(m)
	if r := j.route([]byte(key), 0); r.old != px.addr || r.addr != b.addr {
		t.Fatalf("route %+v: want live %s, old %s", r, b.addr, px.addr)
	}
	return &oldOwnerRig{a: a, b: b, px: px, j: j, key: key}
}

// holdDeleteReply makes the old owner's first delete of the key go
// through (the value deleted) while its reply is held back; once the
// reply is held, during runs and the connection is cut. The channel gets
// during's error, or an error if the reply never came within 10 s.
func (r *oldOwnerRig) holdDeleteReply(during func() error) <-chan error {
	var armed atomic.Bool
	armed.Store(true)
	done := make(chan error, 1)
	r.a.faulty.SetHook(func(op dataplane.FaultOp, _, k []byte) error {
		if op == dataplane.FaultDelete && string(k) == r.key && armed.CompareAndSwap(true, false) {
			r.px.hold()
			go func() {
				if !r.px.waitHeld(10 * time.Second) {
					done <- errors.New("the old owner's reply never came")
					return
				}
				err := during()
				r.px.cut()
				done <- err
			}()
		}
		return nil
	})
	return done
}

// fixedCtl is a Controller that hands out the map it was last given.
type fixedCtl struct {
	mu sync.Mutex
	m  Map
}

func (c *fixedCtl) set(m Map) {
	c.mu.Lock()
	c.m = m
	c.mu.Unlock()
}

func (c *fixedCtl) RegisterJob(context.Context, string, Hints) (Map, error) {
	return Map{}, errors.New("not here")
}
func (c *fixedCtl) DeregisterJob(context.Context, string, []byte) (DropResult, error) {
	return DropResult{}, nil
}
func (c *fixedCtl) GetMap(context.Context, string, []byte) (Map, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m, nil
}
func (c *fixedCtl) Close() error { return nil }

// holdProxy forwards TCP connections to a node. After hold, the node's
// next bytes on a connection (a reply) are kept from the client, and cut
// closes that connection alone; the others go on.
type holdProxy struct {
	addr   string
	to     string
	ln     net.Listener
	held   atomic.Bool
	mu     sync.Mutex
	open   []net.Conn
	victim []net.Conn // the connection whose reply was kept
}

func newHoldProxy(t *testing.T, to string) *holdProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdProxy{addr: ln.Addr().String(), to: to, ln: ln}
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.open {
			c.Close()
		}
		p.mu.Unlock()
	})
	go p.serve()
	return p
}

func (p *holdProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.to)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.open = append(p.open, c, up)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(up, c) }()
		go p.down(c, up)
	}
}

// down copies the node's bytes to the client; the first bytes read while
// held are dropped and their connection kept for cut.
func (p *holdProxy) down(c, up net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		n, err := up.Read(buf)
		if n > 0 && p.held.CompareAndSwap(true, false) {
			p.mu.Lock()
			p.victim = []net.Conn{c, up}
			p.mu.Unlock()
			continue
		}
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			c.Close()
			return
		}
	}
}

func (p *holdProxy) hold() { p.held.Store(true) }

// cut closes the connection whose reply was kept.
func (p *holdProxy) cut() {
	p.mu.Lock()
	for _, c := range p.victim {
		c.Close()
	}
	p.mu.Unlock()
}

// waitHeld reports whether a reply was held back (a connection kept for
// cut) within d.
func (p *holdProxy) waitHeld(d time.Duration) bool {
	return waitUntil(d, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.victim != nil
	})
}
