package pocket

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/dataplane"
)

// TestManifestResentAfterAnotherPut: a manifest put whose reply is lost
// is sent again by doReq once the job's map has changed (the case
// TestManifestPutAgainKeepsItsChunks covers when nothing came between).
// Here another writer's put of the same key lands between the first
// attempt and the resend: it replaces version V and, as it must, drops
// V's chunks. The resend then stores V's manifest again, over the other
// writer's, and the key names a version whose chunks are gone: a get
// fails with a corrupt object instead of returning one complete value.
// The lost reply is made by a proxy in front of the node that holds the
// node's reply to the first manifest put and then cuts the connection;
// the map change is another call's fetch (the map set by hand, as
// TestDropSpansMapChange does), so doReq sends the manifest put again.
func TestManifestResentAfterAnotherPut(t *testing.T) {
	const cs = 16 << 10
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
	other := staticJob(t, Config{ChunkSize: cs}, []string{n.addr}) // another writer, straight to the node
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	valV, valW := randBytes(3*cs+100, 1), randBytes(3*cs+200, 2)

	var armed atomic.Bool
	var commits atomic.Int32 // manifest puts of "obj" that reached the node
	armed.Store(true)
	done := make(chan error, 1)
	n.faulty.SetHook(func(op dataplane.FaultOp, _, key []byte) error {
		if op == dataplane.FaultCommit && string(key) == "obj" {
			commits.Add(1)
		}
		if op == dataplane.FaultCommit && string(key) == "obj" && armed.CompareAndSwap(true, false) {
			px.hold() // the node's reply to this first manifest put never reaches the writer
			go func() { done <- between(ctx, j, ctl, other, px, valV, valW) }()
		}
		return nil
	})
	putErr := j.Put(ctx, "obj", valV)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("the first manifest put never reached the node")
	}
	if putErr != nil {
		t.Logf("the put whose reply was lost: %v", putErr)
	}
	// 3 on the code this was written against: the writer's, the other
	// writer's, the writer's again. A fix may send it once (2).
	t.Logf("%d manifest puts of the key reached the node", commits.Load())
	got, err := j.Get(ctx, "obj")
	if err != nil || !bytes.Equal(got, valV) && !bytes.Equal(got, valW) {
		t.Fatalf("get after the resent manifest put: %d bytes (V: %v, W: %v), %v; want one of the two values whole",
			len(got), bytes.Equal(got, valV), bytes.Equal(got, valW), err)
	}
}

// between runs while the first manifest put's reply is held: it waits
// until version V is readable, puts W over it from the other writer,
// changes j's map (another call's fetch) and cuts the connection.
func between(ctx context.Context, j *Job, ctl *fixedCtl, other *Job, px *holdProxy, valV, valW []byte) error {
	if !waitUntil(10*time.Second, func() bool {
		got, err := other.Get(ctx, "obj")
		return err == nil && bytes.Equal(got, valV)
	}) {
		return errors.New("version V never became readable")
	}
	if !waitUntil(10*time.Second, func() bool {
		px.mu.Lock()
		defer px.mu.Unlock()
		return px.victim != nil
	}) {
		return errors.New("the node's reply to the first manifest put never came")
	}
	if err := other.Put(ctx, "obj", valW); err != nil {
		return err
	}
	m := j.Map()
	m.Epoch++
	ctl.set(m)
	j.setMap(m)
	px.cut()
	return nil
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
func (c *fixedCtl) DeregisterJob(context.Context, string, []byte) error { return nil }
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
