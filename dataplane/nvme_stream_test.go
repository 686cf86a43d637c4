package dataplane_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/nvme"
	"github.com/pocketstore/pocket/wire"
)

// Tests of gets the node streams from the NVMe tier chunk by chunk (values
// over 256 KiB, ops.go): every size, a read failing mid-stream, a client
// leaving mid-stream, and a value deleted or overwritten mid-stream.

// streamNode serves an NVMe tier of capacity bytes on a device whose
// transfers pass through fault (nil: none) and whose buffers are its own,
// so a test can see them all come back.
func streamNode(t *testing.T, capacity int64, eng nvme.Engine, fault nvme.FaultFunc) (*dataplane.NVMe, *nvme.MmapBuffers, string) {
	t.Helper()
	return streamNodeOf(t, capacity, nvme.Options{Engine: eng, Fault: fault}, dataplane.NVMeOptions{})
}

// streamNodeOf is streamNode with the device's and the tier's options.
func streamNodeOf(t *testing.T, capacity int64, opts nvme.Options, topts dataplane.NVMeOptions) (*dataplane.NVMe, *nvme.MmapBuffers, string) {
	t.Helper()
	tier := newNVMe(t, capacity, opts, topts)
	n, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", NVMe: tier, Net: netio.Config{Loops: 2}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	bufs, ok := tier.Device().Buffers().(*nvme.MmapBuffers)
	if !ok {
		t.Fatalf("device buffers are %T, want *nvme.MmapBuffers", tier.Device().Buffers())
	}
	return tier, bufs, n.Addr().String()
}

func dialNVMe(t *testing.T, addr string) *client.Conn {
	t.Helper()
	c, err := client.DialConn(context.Background(), addr, client.ConnOptions{Job: []byte("j"), NVMe: true, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func pattern(seed byte, size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = seed + byte(i/4093)
	}
	return b
}

func putNVMe(t *testing.T, c *client.Conn, key string, val []byte) {
	t.Helper()
	if _, err := c.SendPut([]byte(key), val, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	r, err := c.Recv()
	if err == nil {
		err = r.Err()
	}
	if err != nil {
		t.Fatalf("put %s (%d bytes): %v", key, len(val), err)
	}
}

// getNVMe sends a get and returns its reply; err is the reply's error or
// the connection's.
func getNVMe(c *client.Conn, key string, flags uint16) ([]byte, error) {
	req := wire.Request{Job: []byte("j"), Key: []byte(key)}
	if _, err := c.Send(wire.OpGet, flags|wire.FlagTierNVMe, &req, nil); err != nil {
		return nil, err
	}
	if err := c.Flush(); err != nil {
		return nil, err
	}
	r, err := c.Recv()
	if err == nil {
		err = r.Err()
	}
	return r.Payload, err
}

// eventually polls cond for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 10 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestStreamedGetEverySize gets values of every shape of the stream,
// byte-exact, with both engines (the fallback reads chunks on workers),
// several pipelined on one connection (one streams, the others queue
// behind it or are read whole), and checks every buffer and extent comes
// back.
func TestStreamedGetEverySize(t *testing.T) {
	const chunk = 256 << 10
	sizes := []int{0, 1, 4096, chunk - 1, chunk, chunk + 1, 2*chunk - 4096, 1 << 20, 1<<20 + 4097, 3*chunk + 123, wire.DefaultMaxPayload}
	for _, eng := range engines(t) {
		// A tier chunk under the stream's (64 KiB here) used to hang the
		// get: each stream chunk took four tier buffers, read and sent one.
		for _, tierChunk := range []int{0, 64 << 10} {
			t.Run(fmt.Sprintf("%s/tier-chunk-%d", eng, tierChunk), func(t *testing.T) {
				testStreamedSizes(t, eng, tierChunk, sizes)
			})
		}
	}
}

// testStreamedSizes puts values of sizes on a node whose tier has chunks
// of tierChunk bytes (0: the default) and gets them back whole, one by one
// and pipelined.
func testStreamedSizes(t *testing.T, eng nvme.Engine, tierChunk int, sizes []int) {
	tier, bufs, addr := streamNodeOf(t, 96<<20, nvme.Options{Engine: eng}, dataplane.NVMeOptions{ChunkSize: tierChunk})
	c := dialNVMe(t, addr)
	c.SetDeadline(time.Now().Add(20 * time.Second))
	vals := make(map[string][]byte)
	for i, size := range sizes {
		key := fmt.Sprintf("v%d", i)
		vals[key] = pattern(byte(i), size)
		putNVMe(t, c, key, vals[key])
	}
	for i, size := range sizes {
		key := fmt.Sprintf("v%d", i)
		got, err := getNVMe(c, key, wire.FlagVersion)
		if err != nil || !bytes.Equal(got, vals[key]) {
			t.Fatalf("get of %d bytes: %v, %d bytes back, equal %v", size, err, len(got), bytes.Equal(got, vals[key]))
		}
	}
	// Pipelined: replies may come in any order, each whole.
	ids := make(map[uint64]string)
	for i := range sizes[:len(sizes)-1] {
		key := fmt.Sprintf("v%d", i)
		id, err := c.SendGet([]byte(key))
		if err != nil {
			t.Fatal(err)
		}
		ids[id] = key
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	for range len(ids) {
		r, err := c.Recv()
		if err == nil {
			err = r.Err()
		}
		key, ok := ids[r.ID]
		if err != nil || !ok || !bytes.Equal(r.Payload, vals[key]) {
			t.Fatalf("pipelined get %d (%q): %v, %d bytes, equal %v", r.ID, key, err, len(r.Payload), bytes.Equal(r.Payload, vals[key]))
		}
		delete(ids, r.ID)
	}
	for key := range vals {
		if _, err := tier.Delete([]byte("j"), []byte(key)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "buffers and extents back", func() bool { return bufs.InUse() == 0 && tier.Usage().Used == 0 })
}

// TestStreamedGetReadFailsMidStream fails the device read of a value's
// second chunk after the reply's header and first chunk went out: the
// connection must end inside the payload, so no client can take what it
// got for a whole value (client.Conn reports io.ErrUnexpectedEOF). A
// failure of the first chunk is a plain error reply on a connection that
// stays usable. Nothing leaks either way.
func TestStreamedGetReadFailsMidStream(t *testing.T) {
	const size = 1 << 20
	var failFrom atomic.Int64 // fail reads of bytes from here on; -1: none
	failFrom.Store(-1)
	gate := make(chan struct{}) // a failing read waits for it
	close(gate)
	var gateNow atomic.Pointer[chan struct{}]
	gateNow.Store(&gate)
	fault := func(op nvme.Op, off int64, n int) (int, error) {
		if f := failFrom.Load(); op == nvme.OpRead && f >= 0 && off+int64(n) > f {
			<-*gateNow.Load()
			return 0, syscall.EIO
		}
		return n, nil
	}
	tier, bufs, addr := streamNode(t, 8<<20, nvme.EngineAuto, fault)
	c := dialNVMe(t, addr)
	val := pattern(7, size)
	// The device is empty, so the value's one extent starts at offset 0
	// and its second 256 KiB chunk at 256 KiB.
	putNVMe(t, c, "k", val)
	if got, err := getNVMe(c, "k", 0); err != nil || !bytes.Equal(got, val) {
		t.Fatalf("get before the fault: %v", err)
	}

	failFrom.Store(0)
	_, err := getNVMe(c, "k", 0)
	var werr *wire.Error
	if !errors.As(err, &werr) || werr.Code != wire.CodeIO {
		t.Fatalf("get with the first chunk failing: %v, want a CodeIO reply", err)
	}
	if got, err := getNVMe(c, "k", 0); !errors.As(err, &werr) || got != nil {
		t.Fatalf("the connection is unusable after an error reply: %v", err)
	}

	// The second chunk's read fails once the client has the header.
	held := make(chan struct{})
	gateNow.Store(&held)
	failFrom.Store(256 << 10)
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	meta := wire.NewEncoder().Request(&wire.Request{Job: []byte("j"), Key: []byte("k")})
	var hdr [wire.HeaderLen]byte
	wire.PutHeader(hdr[:], &wire.Header{Op: wire.OpGet, Flags: wire.FlagTierNVMe, ID: 1, MetaLen: uint32(len(meta))})
	if _, err := nc.Write(append(hdr[:], meta...)); err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(nc, hdr[:]); err != nil {
		t.Fatal(err)
	}
	lim := wire.DefaultLimits()
	h, err := wire.ParseHeader(hdr[:], &lim)
	if err != nil || h.Code != wire.CodeOK || h.PayloadLen != size || h.ID != 1 {
		t.Fatalf("reply header %+v, %v; want OK with %d payload bytes", h, err, size)
	}
	close(held)
	got, err := io.ReadAll(nc)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("reading the cut reply: %v", err)
	}
	if len(got) >= size || !bytes.Equal(got, val[:len(got)]) {
		t.Fatalf("cut reply: %d of %d payload bytes, a prefix of the value: %v", len(got), size, bytes.Equal(got, val[:min(len(got), size)]))
	}
	// The SDK's pooled client, with the failure before or after the
	// header (either may win the race now), a get streamed or (while a
	// failed stream's reads finish) read whole: an error, never the value.
	gateNow.Store(&gate)
	pool := client.New(client.Options{ConnsPerNode: 1})
	defer pool.Close()
	for range 5 {
		r, err := pool.Do(context.Background(), addr, wire.OpGet, wire.FlagTierNVMe, &wire.Request{Job: []byte("j"), Key: []byte("k")}, nil, nil)
		if err == nil {
			t.Fatalf("pooled client: a get whose second chunk failed returned %d bytes (the value: %v) and no error", len(r.Payload), bytes.Equal(r.Payload, val))
		}
	}
	failFrom.Store(-1)
	eventually(t, "buffers back", func() bool { return bufs.InUse() == 0 })
	if got, err := getNVMe(dialNVMe(t, addr), "k", 0); err != nil || !bytes.Equal(got, val) {
		t.Fatalf("get after the fault: %v", err)
	}
	tier.Delete([]byte("j"), []byte("k"))
	eventually(t, "extents back", func() bool { return tier.Usage().Used == 0 })
}

// TestStreamedGetClientGone closes connections mid-stream (after the
// request, and after part of the reply) and checks that every chunk buffer
// and the value's reader reference come back: once deleted, its extents
// are free.
func TestStreamedGetClientGone(t *testing.T) {
	const size = 16 << 20
	for _, eng := range engines(t) {
		t.Run(eng.String(), func(t *testing.T) {
			tier, bufs, addr := streamNode(t, 32<<20, eng, nil)
			putNVMe(t, dialNVMe(t, addr), "big", pattern(3, size))
			for i := range 10 {
				c, err := client.DialConn(context.Background(), addr, client.ConnOptions{Job: []byte("j"), NVMe: true, BufferSize: 4096})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := c.SendGet([]byte("big")); err != nil {
					t.Fatal(err)
				}
				if err := c.Flush(); err != nil {
					t.Fatal(err)
				}
				if i%2 == 1 {
					// Read the header and some of the payload first.
					c.SetDeadline(time.Now().Add(20 * time.Millisecond))
					c.Recv()
				}
				c.Close()
			}
			tier.Delete([]byte("j"), []byte("big"))
			eventually(t, "buffers and extents back", func() bool { return bufs.InUse() == 0 && tier.Usage().Used == 0 })
		})
	}
}

// TestStreamedGetValueReplaced deletes, then overwrites, a value while a
// get is streaming it to a client that has stopped reading: the client
// still gets the old bytes whole, the old extents stay allocated (a put
// that would need them fails for space) until the stream ends, and then
// they are freed.
func TestStreamedGetValueReplaced(t *testing.T) {
	const size = 16 << 20
	tier, bufs, addr := streamNode(t, 33<<20, nvme.EngineAuto, nil)
	w := dialNVMe(t, addr)
	old := pattern(1, size)
	putNVMe(t, w, "k", old)

	nc, err := client.DialConn(context.Background(), addr, client.ConnOptions{Job: []byte("j"), NVMe: true, BufferSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.SendGet([]byte("k")); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the stream fills the socket and stalls

	if _, err := tier.Delete([]byte("j"), []byte("k")); err != nil {
		t.Fatal(err)
	}
	putNVMe(t, w, "k", pattern(2, size)) // the other half of the device
	// A third 16 MiB value needs the first one's extents, still read.
	if _, err := w.SendPut([]byte("k2"), pattern(9, size), 0); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	r, err := w.Recv()
	var werr *wire.Error
	if err != nil || !errors.As(r.Err(), &werr) || werr.Code != wire.CodeNoSpace {
		t.Fatalf("put into the streamed value's extents: %v %v, want CodeNoSpace", err, r.Err())
	}

	r, err = nc.Recv()
	if err == nil {
		err = r.Err()
	}
	if err != nil || !bytes.Equal(r.Payload, old) {
		t.Fatalf("streamed get across a delete and an overwrite: %v, %d bytes, equal %v", err, len(r.Payload), bytes.Equal(r.Payload, old))
	}
	eventually(t, "the old extents freed", func() bool { return tier.Usage().Used <= size+(1<<20) })
	putNVMe(t, w, "k2", pattern(9, size))
	if got, err := getNVMe(w, "k", 0); err != nil || !bytes.Equal(got, pattern(2, size)) {
		t.Fatalf("get of the overwrite: %v", err)
	}
	eventually(t, "buffers back", func() bool { return bufs.InUse() == 0 })
}

// TestStreamedGetReadsRunAhead holds the read of a value's first chunk
// and checks that the stream keeps reading behind it up to its window of
// four chunks (three reads in flight, a new one begun as one ends, without
// waiting for the loop or for a chunk to be sent), and no further; then
// lets it go and gets the value whole. The stream once began a chunk's
// read only after the chunk two before it was sent, so two chunks at most
// were read while the first waited.
func TestStreamedGetReadsRunAhead(t *testing.T) {
	const chunk, size = 256 << 10, 2 << 20
	var holding atomic.Bool
	gate := make(chan struct{})
	var mu sync.Mutex
	begun := map[int64]bool{} // chunk offsets read while holding
	fault := func(op nvme.Op, off int64, n int) (int, error) {
		if op != nvme.OpRead || !holding.Load() {
			return n, nil
		}
		mu.Lock()
		begun[off/chunk*chunk] = true
		mu.Unlock()
		if off == 0 {
			<-gate
		}
		return n, nil
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(begun)
	}
	tier, bufs, addr := streamNode(t, 8<<20, nvme.EngineAuto, fault)
	var release sync.Once
	open := func() { release.Do(func() { close(gate) }) }
	t.Cleanup(open) // before the node closes: it waits for the held read
	c := dialNVMe(t, addr)
	val := pattern(5, size)
	// The device is empty, so the value's one extent starts at offset 0.
	putNVMe(t, c, "k", val)
	holding.Store(true)
	type reply struct {
		b   []byte
		err error
	}
	res := make(chan reply, 1)
	go func() {
		b, err := getNVMe(c, "k", 0)
		res <- reply{b, err}
	}()
	eventually(t, "four chunks begun while the first is held", func() bool { return count() >= 4 })
	time.Sleep(50 * time.Millisecond) // room for a fifth, which must not begin
	if n := count(); n != 4 {
		t.Errorf("%d chunks begun while the first is held, want the window's 4", n)
	}
	open()
	r := <-res
	if r.err != nil || !bytes.Equal(r.b, val) {
		t.Fatalf("get after the hold: %v, %d bytes, equal %v", r.err, len(r.b), bytes.Equal(r.b, val))
	}
	holding.Store(false)
	tier.Delete([]byte("j"), []byte("k"))
	eventually(t, "buffers and extents back", func() bool { return bufs.InUse() == 0 && tier.Usage().Used == 0 })
}
