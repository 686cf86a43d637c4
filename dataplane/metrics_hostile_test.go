package dataplane

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/nvme"
	"github.com/pocketstore/pocket/telemetry/metrics"
	"github.com/pocketstore/pocket/wire"
)

// hostileFrame is one raw request frame.
func hostileFrame(op wire.Op, flags uint16, id uint64, req *wire.Request, payload []byte) []byte {
	var meta []byte
	if req != nil {
		meta = append([]byte(nil), wire.NewEncoder().Request(req)...)
	}
	h := wire.Header{Op: op, Flags: flags, ID: id, MetaLen: uint32(len(meta)), PayloadLen: uint32(len(payload))}
	b := wire.AppendHeader(nil, &h)
	b = append(b, meta...)
	return append(b, payload...)
}

// hostileReplies reads n reply frames off nc and returns their headers.
func hostileReplies(t *testing.T, nc net.Conn, n int) []wire.Header {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	lim := wire.DefaultLimits()
	var out []wire.Header
	for range n {
		var hdr [wire.HeaderLen]byte
		if _, err := io.ReadFull(nc, hdr[:]); err != nil {
			t.Fatalf("reply %d of %d: %v", len(out)+1, n, err)
		}
		h, err := wire.ParseHeader(hdr[:], &lim)
		if err != nil {
			t.Fatalf("reply %d: %v", len(out)+1, err)
		}
		if _, err := io.CopyN(io.Discard, nc, int64(h.MetaLen)+int64(h.PayloadLen)); err != nil {
			t.Fatalf("reply %d body: %v", len(out)+1, err)
		}
		out = append(out, h)
	}
	return out
}

// hostileMismatch lists the ops whose answered requests (the sum of
// pocket_node_requests_total over results) differ from their latency
// histogram's sample count.
func hostileMismatch(fams metrics.Families) []string {
	var bad []string
	ops := map[string]bool{}
	if fam := fams[metrics.NodeRequests]; fam != nil {
		for _, m := range fam.Metric {
			for _, lp := range m.Label {
				if lp.GetName() == "op" {
					ops[lp.GetValue()] = true
				}
			}
		}
	}
	if fam := fams[metrics.NodeRequestDuration]; fam != nil {
		for _, m := range fam.Metric {
			for _, lp := range m.Label {
				if lp.GetName() == "op" {
					ops[lp.GetValue()] = true
				}
			}
		}
	}
	for op := range ops {
		reqs := uint64(fams.Sum(metrics.NodeRequests, "op", op))
		if lat := latencyCount(fams, op); reqs != lat {
			bad = append(bad, fmt.Sprintf("%s: %d answered, %d latencies", op, reqs, lat))
		}
	}
	return bad
}

// TestHostileMetricsCountedButUntimedDuringRead: a client pipelines a ping
// and a stat in one write; the stat is served inline on the event loop
// (DRAM behind a Faulty whose hook holds the stat, as a slow inline tier
// call, a big DropJob or a long prefix delete would). While the node is
// still handling that read, the ping has been answered and counted in
// pocket_node_requests_total, but its latency is not in the histogram:
// a scrape at that moment sees more answered pings than ping latencies.
// Before f971010 the ping was counted and timed together.
func TestHostileMetricsCountedButUntimedDuringRead(t *testing.T) {
	d, err := NewDRAM(16<<20, DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f := NewFaulty(d)
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", DRAM: f, Net: netio.Config{Loops: 1}}, d)
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // runs before the node closes (cleanups are LIFO)
	f.SetHook(func(op FaultOp, job, key []byte) error {
		if op == FaultStat && string(key) == "slow" {
			select {
			case entered <- struct{}{}:
			default:
			}
			select {
			case <-release:
			case <-time.After(5 * time.Second):
			}
		}
		return nil
	})

	nc, err := net.Dial("tcp", n.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	req := &wire.Request{Job: []byte("j"), Key: []byte("slow")}
	var b []byte
	b = append(b, hostileFrame(wire.OpPing, 0, 1, &wire.Request{}, nil)...)
	b = append(b, hostileFrame(wire.OpStat, 0, 2, req, nil)...)
	if _, err := nc.Write(b); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the stat never reached the tier")
	}
	during := scrapeNode(t, n)
	pings := uint64(during.Sum(metrics.NodeRequests, "op", "ping"))
	lat := latencyCount(during, "ping")
	unblock()
	hostileReplies(t, nc, 2)
	if pings != lat {
		t.Errorf("scraped while the node served the read: %d pings answered (pocket_node_requests_total), %d ping latencies", pings, lat)
	}
	// Once the read is done the figures agree again.
	waitFor(t, func() bool { return len(hostileMismatch(scrapeNode(t, n))) == 0 })
}

// TestHostileMetricsInvariantMix: a hostile mix, pipelined in one write
// per connection (pings, puts, a put whose payload spans several reads
// through a sink, hits and misses, an unknown op, a request with bad
// metadata and a payload the node must discard, an empty key), then
// connections that send a malformed header, a reply opcode, a payload
// for a get, a put cut off by a close, and pipelined gets closed before
// their replies are read. Every op's latency histogram holds exactly one
// sample per answered request of that op.
func TestHostileMetricsInvariantMix(t *testing.T) {
	n := startNode(t, 64<<20, nil)
	job := []byte("hj")
	key := func(i int) []byte { return []byte(fmt.Sprint("k", i)) }
	dialRaw := func() net.Conn {
		nc, err := net.Dial("tcp", n.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		return nc
	}

	// Connection 1: everything well framed, in one write.
	var b []byte
	id := uint64(0)
	frames := 0
	add := func(op wire.Op, flags uint16, req *wire.Request, payload []byte) {
		id++
		frames++
		b = append(b, hostileFrame(op, flags, id, req, payload)...)
	}
	for i := range 20 {
		add(wire.OpPing, 0, &wire.Request{}, nil)
		add(wire.OpPut, 0, &wire.Request{Job: job, Key: key(i)}, bytes.Repeat([]byte{byte(i)}, 100+i))
		add(wire.OpGet, 0, &wire.Request{Job: job, Key: key(i)}, nil)
		add(wire.OpGet, 0, &wire.Request{Job: job, Key: []byte("missing")}, nil)
		add(wire.OpStat, 0, &wire.Request{Job: job, Key: key(i)}, nil)
	}
	add(wire.OpPut, 0, &wire.Request{Job: job, Key: []byte("big")}, bytes.Repeat([]byte{7}, 3<<20)) // through a sink
	add(wire.OpPing, 0, &wire.Request{}, nil)
	add(wire.Op(14), 0, &wire.Request{Job: job}, nil) // unknown op
	add(wire.OpGet, 0, &wire.Request{Job: job}, nil)  // no key
	// Bad metadata with a payload to discard, half of it a sink's.
	id++
	frames++
	bad := wire.AppendHeader(nil, &wire.Header{Op: wire.OpPut, ID: id, MetaLen: 8, PayloadLen: 1 << 20})
	bad = append(bad, 0xFF, 0xFF, 0, 0, 1, 2, 3, 4)
	b = append(b, append(bad, make([]byte, 1<<20)...)...)
	add(wire.OpDelete, 0, &wire.Request{Job: job, Key: key(0)}, nil)
	add(wire.OpGet, 0, &wire.Request{Job: job, Key: []byte("big")}, nil)
	c1 := dialRaw()
	go c1.Write(b)
	hostileReplies(t, c1, frames)

	// Connections the node closes after answering a malformed frame, each
	// behind good requests in the same write.
	good := func() []byte {
		var g []byte
		for i := range 5 {
			g = append(g, hostileFrame(wire.OpPing, 0, uint64(100+i), &wire.Request{}, nil)...)
			g = append(g, hostileFrame(wire.OpGet, 0, uint64(200+i), &wire.Request{Job: job, Key: key(i + 1)}, nil)...)
		}
		return g
	}
	ping := wire.AppendHeader(nil, &wire.Header{Op: wire.OpPing, ID: 9})
	for _, tail := range [][]byte{
		append([]byte("XX"), ping[2:]...),                                                         // wrong magic
		wire.AppendHeader(nil, &wire.Header{Op: wire.OpGet.Reply(), ID: 10}),                      // reply opcode
		append(wire.AppendHeader(nil, &wire.Header{Op: wire.OpPing, ID: 11, PayloadLen: 1}), 'x'), // payload for a ping
		wire.AppendHeader(nil, &wire.Header{Op: wire.OpPut, ID: 12, PayloadLen: 1<<32 - 1}),       // too large
		wire.AppendHeader(nil, &wire.Header{Op: wire.OpGet, ID: 13, MetaLen: 1 << 30}),            // huge meta
	} {
		nc := dialRaw()
		if _, err := nc.Write(append(good(), tail...)); err != nil {
			t.Fatal(err)
		}
		hostileReplies(t, nc, 11)
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := nc.Read(make([]byte, 1)); err == nil {
			t.Fatal("the node kept a connection open after a malformed frame")
		}
	}

	// A put cut off by a close, behind answered requests.
	cut := dialRaw()
	p := hostileFrame(wire.OpPut, 0, 1, &wire.Request{Job: job, Key: []byte("cut")}, make([]byte, 2<<20))
	cut.Write(append(good(), p[:len(p)/2]...))
	hostileReplies(t, cut, 10)
	cut.Close()

	// Pipelined gets of the big value whose connection closes unread.
	for range 5 {
		nc := dialRaw()
		var g []byte
		for i := range 8 {
			g = append(g, hostileFrame(wire.OpGet, 0, uint64(i), &wire.Request{Job: job, Key: []byte("big")}, nil)...)
		}
		nc.Write(g)
		nc.Close()
	}

	waitMetricsAgree(t, n)
	fams := scrapeNode(t, n)
	if got := fams.Sum(metrics.NodeRequests, "op", "ping"); got < 21+5*5+5 {
		t.Errorf("%v pings counted, want at least %d", got, 21+5*5+5)
	}
}

// TestHostileMetricsInvariantNVMe: the NVMe tier's replies sent later
// from posted tasks (worker gets and puts, reads begun on the loop,
// streamed gets, busy refusals with one worker) mixed with inline ones
// in pipelined writes, and connections closed mid-stream: every op's
// latency histogram still holds one sample per answered request.
func TestHostileMetricsInvariantNVMe(t *testing.T) {
	tier := fileNVMe(t, nvme.Options{Size: 64 << 20, BufferPool: 192 << 20}, NVMeOptions{})
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", NVMe: tier, Net: netio.Config{Loops: 2}, Workers: 1})
	job := []byte("nj")
	big := bytes.Repeat([]byte{3}, 1<<20)
	c := dial(t, n, "nj")
	for _, k := range []string{"big", "small"} {
		v := big
		if k == "small" {
			v = make([]byte, 4096)
		}
		if r := roundTrip(t, c, wire.OpPut, wire.FlagTierNVMe, &wire.Request{Job: job, Key: []byte(k)}, v); r.Code != wire.CodeOK {
			t.Fatal(r.Err())
		}
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			nc, err := net.Dial("tcp", n.Addr().String())
			if err != nil {
				t.Error(err)
				return
			}
			defer nc.Close()
			var b []byte
			id := uint64(0)
			for i := range 12 {
				id++
				b = append(b, hostileFrame(wire.OpPing, 0, id, &wire.Request{}, nil)...)
				id++
				b = append(b, hostileFrame(wire.OpGet, wire.FlagTierNVMe, id, &wire.Request{Job: job, Key: []byte("big")}, nil)...)
				id++
				b = append(b, hostileFrame(wire.OpGet, wire.FlagTierNVMe, id, &wire.Request{Job: job, Key: []byte("small")}, nil)...)
				id++
				b = append(b, hostileFrame(wire.OpGet, wire.FlagTierNVMe, id, &wire.Request{Job: job, Key: []byte("none")}, nil)...)
				id++
				b = append(b, hostileFrame(wire.OpPut, wire.FlagTierNVMe, id, &wire.Request{Job: job, Key: []byte(fmt.Sprint("p", w, i))}, make([]byte, 8192))...)
			}
			if _, err := nc.Write(b); err != nil {
				return
			}
			if w%2 == 1 {
				// Read part of the replies, then close mid-stream.
				nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
				io.CopyN(io.Discard, nc, 300<<10)
				return
			}
			nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			lim := wire.DefaultLimits()
			for range id {
				var hdr [wire.HeaderLen]byte
				if _, err := io.ReadFull(nc, hdr[:]); err != nil {
					t.Errorf("conn %d: %v", w, err)
					return
				}
				h, err := wire.ParseHeader(hdr[:], &lim)
				if err != nil {
					t.Errorf("conn %d: %v", w, err)
					return
				}
				if _, err := io.CopyN(io.Discard, nc, int64(h.MetaLen)+int64(h.PayloadLen)); err != nil {
					t.Errorf("conn %d: %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	waitMetricsAgree(t, n)
}

// waitMetricsAgree waits up to 3 s for n's scrape to show as many
// latencies as answered requests for every op (replies of closed
// connections may still be on their way), and fails if it never does.
func waitMetricsAgree(t *testing.T, n *Node) {
	t.Helper()
	var last []string
	deadline := time.Now().Add(3 * time.Second)
	for {
		last = hostileMismatch(scrapeNode(t, n))
		if len(last) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(last) != 0 {
		t.Fatalf("requests answered and latencies differ: %v", last)
	}
}
