package pocket

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	dataclient "github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/wire"
)

// putUnnamed leaves on every node of j's map chunks of one version of key
// that no manifest names, as a persist-after-job writer does that stops
// between confirming its chunks and publishing its manifest: each node
// gets chunks of size bytes (leased, then confirmed).
func putUnnamed(t *testing.T, j *Job, key string, chunks int, size int) uint64 {
	t.Helper()
	ctx := context.Background()
	m := j.snapshot()
	cl := dataclient.New(dataclient.Options{})
	defer cl.Close()
	ver := newVersion()
	i := 1
	for _, n := range m.Nodes {
		for range chunks {
			req := wire.Request{Job: []byte(m.Job), Key: wire.AppendChunkKey(nil, []byte(key), ver, i), Token: m.Token,
				Epoch: m.Epoch, Version: ver}
			flags := wire.FlagChunk | wire.FlagLease | wire.FlagPersist
			// A node that has not heard of the job yet answers a stale
			// epoch, as the SDK's puts meet it, and is asked again.
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				_, err := cl.Do(ctx, n.Addr, wire.OpPut, flags, &req, bytes.Repeat([]byte{byte(i)}, size), nil)
				if err == nil {
					break
				}
				if !errors.Is(err, wire.ErrStaleEpoch) || time.Now().After(deadline) {
					t.Fatalf("chunk %d at %s: %v", i, n.Addr, err)
				}
			}
			i++
		}
		req := wire.Request{Job: []byte(m.Job), Token: m.Token, Epoch: m.Epoch, Version: ver}
		if r, err := cl.Do(ctx, n.Addr, wire.OpConfirm, 0, &req, nil, nil); err != nil || r.Meta.Count != uint64(chunks) {
			t.Fatalf("confirm at %s: %v (%d chunks)", n.Addr, err, r.Meta.Count)
		}
	}
	return ver
}

// TestEndedJobsUnnamedChunksAreSwept: a job persists a large value (its
// chunks and manifest on both nodes) and leaves chunks of another version
// that no manifest names, as a writer that stopped between confirming and
// publishing does. When the job is deregistered the controller has its
// nodes drop those chunks, and only those: the persisted value reads back
// whole through the job's credential, and the nodes hold its bytes alone.
// On the old code the unnamed chunks (4 MiB) stayed until `pocket rm
// --all`: nothing reads them and no listing shows them.
func TestEndedJobsUnnamedChunksAreSwept(t *testing.T) {
	c := newTestCluster(t, 2, 64<<20)
	ctx := context.Background()
	s := c.store()
	j, err := s.RegisterJob(ctx, "sweep", Hints{})
	if err != nil {
		t.Fatal(err)
	}
	if len(j.snapshot().Nodes) != 2 {
		t.Fatalf("the job's map has %d nodes, want both", len(j.snapshot().Nodes))
	}
	kept := randBytes(5<<20+17, 7) // 6 chunks, on both nodes
	if err := j.Put(ctx, "kept", kept, Persist()); err != nil {
		t.Fatal(err)
	}
	if err := j.Put(ctx, "temp", randBytes(3<<20, 8)); err != nil { // dropped at the end
		t.Fatal(err)
	}
	withKept := c.used()
	putUnnamed(t, j, "half-written", 2, 1<<20)
	unnamed := c.used() - withKept
	if unnamed < 4<<20 {
		t.Fatalf("the unnamed chunks take %d bytes, want 4 MiB or more", unnamed)
	}
	cred := j.Credential()
	if err := j.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	// The temporary value goes with the drop, the unnamed chunks with the
	// sweep after it.
	deadline := time.Now().Add(10 * time.Second)
	for c.used() > withKept-3<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("the nodes hold %d bytes 10 s after the job ended; the persisted value takes about %d, the unnamed chunks %d",
				c.used(), withKept-3<<20, unnamed)
		}
		time.Sleep(20 * time.Millisecond)
	}
	awaitSwept(t, c, 2, uint64(unnamed))
	ended, err := s.OpenCredential(cred)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ended.Get(ctx, "kept")
	if err != nil || !bytes.Equal(got, kept) {
		t.Fatalf("the persisted value after the sweep: %d bytes, %v; want %d bytes, whole", len(got), err, len(kept))
	}
	if _, err := ended.Get(ctx, "temp"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the temporary value after the job's end: %v, want not found", err)
	}
}

// TestSweepWaitsForADeadNode: a job that ends with a node of its map dead
// is not swept then, since the node may come back with manifests naming
// the chunks the others hold: the unnamed chunks on the live node stay.
// Once the dead node serves again and has applied the job's end, the
// sweep runs: the unnamed chunks go from both nodes and the persisted
// value, its manifest on either, reads back whole. On the old code no
// sweep ever ran (TestEndedJobsUnnamedChunksAreSwept).
func TestSweepWaitsForADeadNode(t *testing.T) {
	c := newTestCluster(t, 2, 64<<20)
	j, s, vals, withKept := persistedJob(t, c, "sweepdead")
	putUnnamed(t, j, "half-written", 1, 1<<20)
	cred := j.Credential()
	cutOff(t, c.nodes[1], j)
	before := c.nodes[0].tier.Usage().Used
	deregisterAnyway(t, j)
	time.Sleep(time.Second) // a sweep, had it run, ends within milliseconds here
	if got := c.nodes[0].tier.Usage().Used; got != before || c.ctl.SweptVersions() != 0 {
		t.Fatalf("the live node holds %d bytes after the end (%d before), %d versions swept; want all kept, none swept",
			got, before, c.ctl.SweptVersions())
	}
	c.resumeAgent(c.nodes[1])
	awaitUsed(t, c, withKept, 15*time.Second, "after the dead node came back")
	awaitSwept(t, c, 2, 1<<20)
	readsWhole(t, s, cred, vals)
}

// replyRewriter is a TCP proxy in front of a node that passes everything
// and rewrites the metadata of the node's replies whose op is in rewrite,
// as an attacker on the path between the controller and the node may (the
// data plane is plain TCP).
type replyRewriter struct {
	ln      net.Listener
	target  string
	rewrite map[wire.Op]func(*wire.Response)
	hits    atomic.Int64
}

func newReplyRewriter(t *testing.T, target string, rewrite map[wire.Op]func(*wire.Response)) *replyRewriter {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &replyRewriter{ln: ln, target: target, rewrite: rewrite}
	t.Cleanup(func() { ln.Close() })
	go p.serve()
	return p
}

func (p *replyRewriter) serve() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		go func() { _, _ = io.Copy(out, in); out.Close() }()
		go func() { p.replies(out, in); in.Close() }()
	}
}

// replies copies reply frames from node to client, rewriting those chosen.
func (p *replyRewriter) replies(node io.Reader, client io.Writer) {
	lim := wire.DefaultLimits()
	var hdr [wire.HeaderLen]byte
	for {
		if _, err := io.ReadFull(node, hdr[:]); err != nil {
			return
		}
		h, err := wire.ParseHeader(hdr[:], &lim)
		if err != nil {
			return
		}
		meta := make([]byte, h.MetaLen)
		if _, err := io.ReadFull(node, meta); err != nil {
			return
		}
		if f := p.rewrite[h.Op]; f != nil && h.Code == wire.CodeOK {
			var r wire.Response
			if wire.DecodeResponse(meta, &r) == nil {
				f(&r)
				meta = append([]byte(nil), wire.NewEncoder().Response(&r)...)
				h.MetaLen = uint32(len(meta))
				p.hits.Add(1)
			}
		}
		if _, err := client.Write(append(wire.AppendHeader(nil, &h), meta...)); err != nil {
			return
		}
		if _, err := io.CopyN(client, node, int64(h.PayloadLen)); err != nil {
			return
		}
	}
}

// TestSweepBelievesOnlyProvedAnswers: an attacker on the path between the
// controller and one node, without the cluster secret or any token,
// rewrites that node's answers: its drop says it keeps nothing, its
// versions say its manifests name none. The sweep must not drop the
// chunks of the values whose manifests that node holds: every persisted
// value reads back whole after the job's end. On 91002ab (the sweep's
// first commit) a hostile trial's proxy tore 3 of 10 persisted 3 MiB
// values this way, 6 runs of 6: the controller believed the answers.
func TestSweepBelievesOnlyProvedAnswers(t *testing.T) {
	c := newTestCluster(t, 1, 64<<20)
	nd, d := c.newNode(64 << 20)
	p := newReplyRewriter(t, nd.Addr().String(), map[wire.Op]func(*wire.Response){
		wire.OpDropJob.Reply():  func(r *wire.Response) { r.Capacity = 0 },
		wire.OpVersions.Reply(): func(r *wire.Response) { r.Versions, r.More = nil, false },
	})
	c.runAgent(nd, d, p.ln.Addr().String())
	c.awaitActive(2)
	ctx := context.Background()
	s := c.store()
	j, err := s.RegisterJob(ctx, "sweepmitm", Hints{})
	if err != nil {
		t.Fatal(err)
	}
	if len(j.snapshot().Nodes) != 2 {
		t.Fatalf("the job's map has %d nodes, want both", len(j.snapshot().Nodes))
	}
	vals := map[string][]byte{}
	for i := range 8 {
		k := fmt.Sprintf("v%d", i)
		vals[k] = randBytes(2<<20+i, uint64(i))
		if err := j.Put(ctx, k, vals[k], Persist()); err != nil {
			t.Fatal(err)
		}
	}
	putUnnamed(t, j, "half-written", 1, 1<<20)
	cred := j.Credential()
	if err := j.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for p.hits.Load() < 1 { // the drop's answer
		if time.Now().After(deadline) {
			t.Fatal("the proxy rewrote no answer 10 s after the end")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second) // what a sweep drops, it drops within milliseconds here
	ended, err := s.OpenCredential(cred)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range vals {
		if got, err := ended.Get(ctx, k); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s after the end: %d bytes, %v; want %d bytes, whole", k, len(got), err, len(want))
		}
	}
}
