package dataplane_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/nvme"
	"github.com/pocketstore/pocket/wire"
)

// Hostile tests of 65dea33: a streamed get's reads are begun from the
// io_uring reaper (or a worker) as well as from the loop.

// rawGet sends a get on nc and reads the reply whole; a read stalled for
// stall is reported through onStall (once), which may unstick it, and the
// read goes on for another stall.
func rawGet(nc net.Conn, id uint64, key string, stall time.Duration, onStall func(got int)) ([]byte, error) {
	meta := wire.NewEncoder().Request(&wire.Request{Job: []byte("j"), Key: []byte(key)})
	var hdr [wire.HeaderLen]byte
	wire.PutHeader(hdr[:], &wire.Header{Op: wire.OpGet, Flags: wire.FlagTierNVMe, ID: id, MetaLen: uint32(len(meta))})
	if _, err := nc.Write(append(hdr[:], meta...)); err != nil {
		return nil, err
	}
	stalled := false
	got := 0
	readFull := func(b []byte) error {
		for off := 0; off < len(b); {
			nc.SetReadDeadline(time.Now().Add(stall))
			n, err := nc.Read(b[off:])
			off += n
			got += n
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) && !stalled {
					stalled = true
					onStall(got)
					continue
				}
				return err
			}
		}
		return nil
	}
	if err := readFull(hdr[:]); err != nil {
		return nil, err
	}
	lim := wire.DefaultLimits()
	h, err := wire.ParseHeader(hdr[:], &lim)
	if err != nil {
		return nil, err
	}
	if h.Code != wire.CodeOK {
		return nil, fmt.Errorf("reply code %v", h.Code)
	}
	body := make([]byte, int(h.MetaLen)+int(h.PayloadLen))
	if err := readFull(body); err != nil {
		return nil, err
	}
	return body[h.MetaLen:], nil
}

// TestHostileStreamLostSubmit (a stress test; it passes) gets a
// many-chunk value over and over on one connection, the only device
// traffic there is, on io_uring. The hazard looked for: a read the reaper
// begins with submit false (fill thought another would follow) left
// queued unsubmitted when the loop's fill takes the last read the window
// allows and flushes before the reaper's read is published; nothing else
// would submit it and the get would stall. A stall is told from slowness
// by flushing the device by hand: the get then completes. (By the
// counters, after the initial fill on the loop every fill begins at most
// one read, which is always the last, so the window never opens.)
func TestHostileStreamLostSubmit(t *testing.T) {
	if err := nvme.ProbeUring(); err != nil {
		t.Skip(err)
	}
	const size = 4<<20 + 4096 // 17 chunks
	tier, bufs, addr := streamNode(t, 16<<20, nvme.EngineUring, nil)
	putNVMe(t, dialNVMe(t, addr), "k", pattern(4, size))
	val := pattern(4, size)
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	deadline := time.Now().Add(3 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		var stalledAt = -1
		got, err := rawGet(nc, uint64(i+1), "k", 2*time.Second, func(n int) {
			stalledAt = n
			tier.Device().Flush() // hands the kernel any read queued and never submitted
		})
		if err != nil || !bytes.Equal(got, val) {
			t.Fatalf("get %d: %v, %d bytes, equal %v (stalled at %d)", i, err, len(got), bytes.Equal(got, val), stalledAt)
		}
		if stalledAt >= 0 {
			t.Fatalf("get %d stalled for 2 s after %d reply bytes with no other device traffic, and completed once the test flushed the device: a chunk read was queued on the ring and never submitted", i, stalledAt)
		}
	}
	tier.Delete([]byte("j"), []byte("k"))
	eventually(t, "buffers and extents back", func() bool { return bufs.InUse() == 0 && tier.Usage().Used == 0 })
}

// hostileNode serves tier on a node with the given workers (0: default).
func hostileNode(t *testing.T, tier *dataplane.NVMe, workers int) *dataplane.Node {
	t.Helper()
	n, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", NVMe: tier, Net: netio.Config{Loops: 2}, Workers: workers})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// drainGets sends gets of key on a raw connection to addr, pipelined
// depth at a time, and reads replies until the connection fails or stop
// is closed; a reply that comes back OK must be the value exactly.
func drainGets(addr, key string, val []byte, depth int, stop <-chan struct{}, bad func(string)) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return
	}
	defer nc.Close()
	go func() { <-stop; nc.Close() }()
	meta := wire.NewEncoder().Request(&wire.Request{Job: []byte("j"), Key: []byte(key)})
	lim := wire.DefaultLimits()
	send := func(id uint64) error {
		var hdr [wire.HeaderLen]byte
		wire.PutHeader(hdr[:], &wire.Header{Op: wire.OpGet, Flags: wire.FlagTierNVMe, ID: id, MetaLen: uint32(len(meta))})
		_, err := nc.Write(append(hdr[:], meta...))
		return err
	}
	id := uint64(0)
	for ; id < uint64(depth); id++ {
		if send(id+1) != nil {
			return
		}
	}
	for {
		var hdr [wire.HeaderLen]byte
		if _, err := io.ReadFull(nc, hdr[:]); err != nil {
			return
		}
		h, err := wire.ParseHeader(hdr[:], &lim)
		if err != nil {
			bad(fmt.Sprintf("bad reply header: %v", err))
			return
		}
		body := make([]byte, int(h.MetaLen)+int(h.PayloadLen))
		if _, err := io.ReadFull(nc, body); err != nil {
			if h.Code == wire.CodeOK && errors.Is(err, io.ErrUnexpectedEOF) {
				// a cut reply: allowed only as a prefix of the value
				return
			}
			return
		}
		if h.Code == wire.CodeOK && !bytes.Equal(body[h.MetaLen:], val) {
			bad(fmt.Sprintf("reply %d: %d bytes, not the value", h.ID, h.PayloadLen))
			return
		}
		id++
		if send(id) != nil {
			return
		}
	}
}

// TestHostileStreamNodeCloseMidStream closes nodes while streamed gets
// are in flight on the worker path (the sync engine: Device.Start
// declines). A worker that finishes a chunk's read begins the next one
// itself (fill -> read -> Node.submit); if that races Node.Close, which
// closes the work channel once the loops are down, the send panics.
func TestHostileStreamNodeCloseMidStream(t *testing.T) {
	const size = 2<<20 + 4096
	var slow atomic.Bool
	fault := func(op nvme.Op, off int64, n int) (int, error) {
		if slow.Load() && rand.IntN(4) == 0 {
			time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
		}
		return n, nil
	}
	for _, eng := range []nvme.Engine{nvme.EngineSync, nvme.EngineAuto} {
		var f nvme.FaultFunc
		if eng == nvme.EngineAuto {
			f = fault
		}
		tier := newNVMe(t, 16<<20, nvme.Options{Engine: eng, Fault: f}, dataplane.NVMeOptions{})
		val := pattern(6, size)
		pn := hostileNode(t, tier, 0)
		pc := dialNVMe(t, pn.Addr().String())
		putNVMe(t, pc, "k", val)
		pc.Close()
		pn.Close()
		slow.Store(true)
		deadline := time.Now().Add(3 * time.Second)
		for cycle := 0; time.Now().Before(deadline); cycle++ {
			n := hostileNode(t, tier, 2)
			addr := n.Addr().String()
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for range 6 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					drainGets(addr, "k", val, 2, stop, func(s string) { t.Error(s) })
				}()
			}
			time.Sleep(time.Duration(1+rand.IntN(8)) * time.Millisecond)
			n.Close()
			close(stop)
			wg.Wait()
		}
		slow.Store(false)
	}
}

// hookBufs is a buffer source whose allocations pass through hook first.
type hookBufs struct {
	inner nvme.BufferSource
	hook  func()
}

func (b *hookBufs) AllocAligned(n, align int) ([]byte, error) {
	b.hook()
	return b.inner.AllocAligned(n, align)
}
func (b *hookBufs) Free(p []byte) { b.inner.Free(p) }

// inStack reports whether the calling goroutine's stack names every one
// of fns.
func inStack(fns ...string) bool {
	buf := make([]byte, 64<<10)
	st := string(buf[:runtime.Stack(buf, false)])
	for _, f := range fns {
		if !strings.Contains(st, f) {
			return false
		}
	}
	return true
}

// anyStack reports whether some goroutine's stack names fn.
func anyStack(fn string) bool {
	buf := make([]byte, 1<<20)
	return strings.Contains(string(buf[:runtime.Stack(buf, true)]), fn)
}

// TestHostileStreamWorkerReadAfterNodeClose: on the worker path, a
// worker that finished chunk k's read begins chunk k+3's read itself
// (posted -> fill -> read -> Node.submit). fill checks stopped under the
// stream's mutex, then lets it go and begins the read; between the two
// the connection may close (OnClose -> stop, too late) and Node.Close may
// close the work channel (stopWorkers), and the worker's Node.submit then
// sends on a closed channel: the process panics. The old code began reads
// on the loop only, and the loops are down before the channel closes.
//
// The test makes the window wide: the worker's chunk buffer allocation in
// fill (inside the window) waits until Node.Close is in stopWorkers. It
// runs the scenario in a child process, since the panic is on a worker
// goroutine and kills the process.
func TestHostileStreamWorkerReadAfterNodeClose(t *testing.T) {
	if os.Getenv("HOSTILE_NODE_CLOSE_CHILD") == "1" {
		workerReadAfterNodeClose(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHostileStreamWorkerReadAfterNodeClose$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "HOSTILE_NODE_CLOSE_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		lines := strings.Split(string(out), "\n")
		for i, l := range lines {
			if strings.HasPrefix(l, "panic:") {
				lines = lines[i:]
				break
			}
		}
		if len(lines) > 24 {
			lines = lines[:24]
		}
		t.Fatalf("closing a node while a worker begins a streamed get's next chunk: %v\n%s", err, strings.Join(lines, "\n"))
	}
}

func workerReadAfterNodeClose(t *testing.T) {
	const size = 1<<20 + 4096 // 5 chunks
	dir := nvmeDir(t)
	dev, err := nvme.Open(filepath.Join(dir, "dev"), nvme.Options{Size: 16 << 20, Engine: nvme.EngineSync, BufferPool: 48 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var trap atomic.Bool
	trapped := make(chan struct{})
	gate := make(chan struct{})
	var once sync.Once
	hb := &hookBufs{inner: dev.Buffers(), hook: func() {
		// A worker beginning a chunk's read from a read's completion.
		if trap.Load() && inStack("(*getStream).fill", "(*Node).startWorkers") {
			once.Do(func() {
				close(trapped)
				<-gate
			})
		}
	}}
	tier, err := dataplane.NewNVMe(dev, dataplane.NVMeOptions{Buffers: hb})
	if err != nil {
		t.Fatal(err)
	}
	n := hostileNode(t, tier, 2)
	addr := n.Addr().String()
	c := dialNVMe(t, addr)
	putNVMe(t, c, "k", pattern(8, size))
	trap.Store(true)
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	go rawGet(nc, 1, "k", time.Minute, func(int) {})
	select {
	case <-trapped:
	case <-time.After(5 * time.Second):
		t.Log("no worker began a chunk's read from a read's completion: nothing to race")
		return
	}
	closed := make(chan struct{})
	go func() { n.Close(); close(closed) }()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !anyStack("(*Node).stopWorkers"); {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(gate) // the worker goes on to begin the read
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Node.Close did not return")
	}
}

// TestHostileStreamManyConnsChurn streams a value to many connections at
// once, pipelined, on both engines and on the fault-hooked worker path
// with random read failures, while clients hang up at random; every reply
// that comes back OK must be the value exactly, and once all are gone and
// the value deleted every buffer and extent must be back.
func TestHostileStreamManyConnsChurn(t *testing.T) {
	const size = 3<<20 + 777
	type setup struct {
		name string
		eng  nvme.Engine
		fail bool
	}
	var failing atomic.Bool
	fault := func(op nvme.Op, off int64, n int) (int, error) {
		if op == nvme.OpRead && failing.Load() && rand.IntN(40) == 0 {
			return 0, syscall.EIO
		}
		if rand.IntN(8) == 0 {
			time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
		}
		return n, nil
	}
	setups := []setup{{"sync", nvme.EngineSync, false}, {"worker-faults", nvme.EngineAuto, true}}
	if nvme.ProbeUring() == nil {
		setups = append(setups, setup{"io_uring", nvme.EngineUring, false})
	}
	for _, su := range setups {
		t.Run(su.name, func(t *testing.T) {
			var f nvme.FaultFunc
			if su.fail {
				f = fault
			}
			tier := newNVMe(t, 16<<20, nvme.Options{Engine: su.eng, Fault: f}, dataplane.NVMeOptions{})
			n := hostileNode(t, tier, 4)
			defer n.Close()
			addr := n.Addr().String()
			val := pattern(9, size)
			putNVMe(t, dialNVMe(t, addr), "k", val)
			bufs := tier.Device().Buffers().(*nvme.MmapBuffers)
			failing.Store(su.fail)
			var bad atomic.Value
			deadline := time.Now().Add(2 * time.Second)
			var wg sync.WaitGroup
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for time.Now().Before(deadline) {
						stop := make(chan struct{})
						tm := time.AfterFunc(time.Duration(rand.IntN(30))*time.Millisecond, func() { close(stop) })
						drainGets(addr, "k", val, 1+rand.IntN(3), stop, func(s string) { bad.Store(s) })
						tm.Stop()
					}
				}()
			}
			wg.Wait()
			failing.Store(false)
			if s, ok := bad.Load().(string); ok {
				t.Fatal(s)
			}
			// Reads begun for connections that hung up may still hold the
			// device's slots: a get meanwhile is refused busy (the SDKs
			// retry it), so this one does too, and must then read the value.
			c := dialNVMe(t, addr)
			got, err := getNVMe(c, "k", 0)
			for deadline := time.Now().Add(10 * time.Second); wire.CodeOf(err) == wire.CodeBusy && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
				got, err = getNVMe(c, "k", 0)
			}
			if err != nil || !bytes.Equal(got, val) {
				t.Fatalf("get after the churn: %v", err)
			}
			tier.Delete([]byte("j"), []byte("k"))
			eventually(t, "buffers and extents back", func() bool { return bufs.InUse() == 0 && tier.Usage().Used == 0 })
		})
	}
}
