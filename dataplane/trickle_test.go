package dataplane

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/nvme"
	"github.com/pocketstore/pocket/wire"
)

// A put whose payload trickles in (a byte every 100 ms: each byte is
// progress against the idle timeout) holds the space its header reserved
// only until it falls behind the minimum pace (netio.Config.MinSinkRate
// after SinkGrace): then its connection is closed and the reservation
// freed, and another job's put that did not fit beside it is stored. A
// hostile trial (2026-12-01) kept a 256 MiB node's puts refused this way
// for as long as it trickled; on the old code the reservation stayed, and
// this test's victim put was refused for all of its 10 s.
func TestTricklingPutReleasesItsReservation(t *testing.T) {
	d := newDRAMTier(t, 64<<20)
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", DRAM: d,
		Net: netio.Config{Loops: 1, MinSinkRate: 1 << 20, SinkGrace: 300 * time.Millisecond}}, d)

	meta := wire.NewEncoder().Request(&wire.Request{Job: []byte("squat"), Key: []byte("big")})
	frame := wire.AppendHeader(nil, &wire.Header{Op: wire.OpPut, ID: 1, MetaLen: uint32(len(meta)), PayloadLen: 48 << 20})
	frame = append(append(frame, meta...), 0)
	nc, err := net.Dial("tcp", n.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Write(frame); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); d.Usage().Used < 48<<20; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the trickling put reserved %d bytes, want 48 MiB", d.Usage().Used)
		}
	}
	cut := make(chan error, 1)
	go func() {
		for {
			if _, err := nc.Write([]byte{0}); err != nil {
				cut <- err
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()

	c := dial(t, n, "victim")
	val := make([]byte, 32<<20)
	refused := 0
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r := roundTrip(t, c, wire.OpPut, 0, &wire.Request{Job: []byte("victim"), Key: []byte("k")}, val)
		if r.Err() == nil {
			break
		}
		if !errors.Is(r.Err(), wire.ErrNoSpace) {
			t.Fatalf("victim put: %v", r.Err())
		}
		refused++
		if time.Now().After(deadline) {
			t.Fatalf("victim put refused %d times over 10 s while another connection trickled its put", refused)
		}
	}
	if refused == 0 {
		t.Fatal("the victim's put fitted beside the trickling put's reservation: the test proves nothing")
	}
	select {
	case <-cut:
	case <-time.After(5 * time.Second):
		t.Fatal("the trickling connection is still open")
	}
	if st := n.Stats().Net; st.SlowSinks != 1 {
		t.Fatalf("SlowSinks %d, want 1", st.SlowSinks)
	}
}

// announcePut opens a raw connection to n and sends the header of a put
// of size bytes of job with tok, and one byte of its payload.
func announcePut(t *testing.T, n *Node, job, key string, tok []byte, size uint32) net.Conn {
	t.Helper()
	return announcePutAt(t, n, job, key, tok, 0, size)
}

// announcePutAt is announcePut by the job's map of the given epoch.
func announcePutAt(t *testing.T, n *Node, job, key string, tok []byte, epoch uint64, size uint32) net.Conn {
	t.Helper()
	meta := wire.NewEncoder().Request(&wire.Request{Job: []byte(job), Key: []byte(key), Token: tok, Epoch: epoch})
	frame := wire.AppendHeader(nil, &wire.Header{Op: wire.OpPut, ID: 1, MetaLen: uint32(len(meta)), PayloadLen: size})
	nc, err := net.Dial("tcp", n.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	if _, err := nc.Write(append(append(frame, meta...), 0)); err != nil {
		t.Fatal(err)
	}
	return nc
}

// One job's puts still arriving on a node hold at most a quarter of its
// tier (NodeConfig.MaxUnfinishedPerJob's default) once the tier is half
// full: six connections that each announce a 12 MiB put of one job and
// send a byte (the pace rule off, as within its 5 s grace) reserve two
// puts' 24 MiB of a 64 MiB node, and another job's 32 MiB put is stored
// beside them. The job's own whole put past the bound is refused busy,
// saying why; once its unfinished puts are dropped, the job puts again.
// On the old code the announcements reserved 60 MiB, and the other job's
// put was refused for all of the test's 10 s.
func TestUnfinishedPutsBoundedPerJob(t *testing.T) {
	d := newDRAMTier(t, 64<<20)
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", DRAM: d, Guard: NewTokenGuard(jtSecret),
		Net: netio.Config{Loops: 1, MinSinkRate: -1}}, d)
	n.ApplyAck(syncAck(100, wire.JobEpoch{Job: "sq-1", Gen: 90}, wire.JobEpoch{Job: "vi-2", Gen: 95}))
	sq, vi := jobTok("sq-1", 90), jobTok("vi-2", 95)
	var conns []net.Conn
	for i := 0; i < 6; i++ {
		conns = append(conns, announcePut(t, n, "sq-1", "big", sq, 12<<20))
	}
	for deadline := time.Now().Add(5 * time.Second); d.Usage().Used < 24<<20; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the announced puts reserved %d bytes, want 24 MiB", d.Usage().Used)
		}
	}

	c := dial(t, n, "vi-2")
	val := make([]byte, 32<<20)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r := roundTrip(t, c, wire.OpPut, 0, &wire.Request{Job: []byte("vi-2"), Key: []byte("k"), Token: vi}, val)
		if r.Err() == nil {
			break
		}
		if !errors.Is(r.Err(), wire.ErrNoSpace) || time.Now().After(deadline) {
			t.Fatalf("another job's 32 MiB put beside 6 announced 12 MiB puts (%d bytes reserved): %v", d.Usage().Used, r.Err())
		}
	}
	if used := d.Usage().Used; used > 58<<20 {
		t.Fatalf("%d bytes in use with two 12 MiB puts unfinished and a 32 MiB value", used)
	}

	sqc := dial(t, n, "sq-1")
	whole := make([]byte, 12<<20)
	r := roundTrip(t, sqc, wire.OpPut, 0, &wire.Request{Job: []byte("sq-1"), Key: []byte("k2"), Token: sq}, whole)
	if !errors.Is(r.Err(), wire.ErrBusy) || !strings.Contains(r.Err().Error(), "still arriving") {
		t.Fatalf("the job's put past its bound: %v, want busy naming its unfinished puts", r.Err())
	}
	for _, nc := range conns {
		nc.Close()
	}
	key := ownerKey(nil, "sq-1")
	for deadline := time.Now().Add(5 * time.Second); n.unfinished.held(key, 0) != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d unfinished bytes counted once every announcing connection closed", n.unfinished.held(key, 0))
		}
	}
	if r := roundTrip(t, sqc, wire.OpPut, 0, &wire.Request{Job: []byte("sq-1"), Key: []byte("k2"), Token: sq}, whole); r.Err() != nil {
		t.Fatalf("the job's put once its unfinished ones were dropped: %v", r.Err())
	}
	if held, shares := n.unfinished.held(key, 0), unfinishedCount(n); held != 0 || shares != 0 {
		t.Fatalf("%d unfinished bytes counted, %d owners' shares kept, after a finished put", held, shares)
	}
}

// The default bounds of a job's unfinished puts are a quarter of the
// memory each tier's puts fill while their payloads arrive: the DRAM
// tier's capacity, the NVMe tier's staging regions (not its device).
func TestUnfinishedCapsByTier(t *testing.T) {
	d := newDRAMTier(t, 64<<20)
	nv := fileNVMe(t, nvme.Options{Size: 256 << 20, BufferPool: 8 << 20, Engine: nvme.EngineSync}, NVMeOptions{})
	if got := unfinishedCaps(NodeConfig{DRAM: d, NVMe: nv}); got != [2]int64{16 << 20, 2 << 20} {
		t.Fatalf("default bounds %v, want DRAM 16 MiB and NVMe 2 MiB", got)
	}
	if got := unfinishedCaps(NodeConfig{DRAM: d, NVMe: nv, MaxUnfinishedPerJob: 5}); got != [2]int64{5, 5} {
		t.Fatalf("bounds %v, want 5 and 5", got)
	}
	if got := unfinishedCaps(NodeConfig{NVMe: nv, MaxUnfinishedPerJob: -1}); got != [2]int64{} {
		t.Fatalf("bounds %v, want none", got)
	}
}

// In a DRAM tier less than half full the bound on a job's unfinished puts
// does not apply: three announced 8 MiB puts of one job and a fourth put
// of 4 MiB (28 MiB unfinished, past the 16 MiB quarter of a 64 MiB node,
// 28 MiB of 64 in use) are all taken. Under the bound alone, a new user's
// 16 parallel puts of 48 MiB into one node took 2 to 12 times as long.
func TestUnfinishedBoundWaitsForAHalfFullTier(t *testing.T) {
	d := newDRAMTier(t, 64<<20)
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", DRAM: d, Guard: NewTokenGuard(jtSecret),
		Net: netio.Config{Loops: 1, MinSinkRate: -1}}, d)
	n.ApplyAck(syncAck(100, wire.JobEpoch{Job: "par-1", Gen: 90}))
	tok := jobTok("par-1", 90)
	for i := 0; i < 3; i++ {
		announcePut(t, n, "par-1", fmt.Sprintf("big-%d", i), tok, 8<<20)
	}
	for deadline := time.Now().Add(5 * time.Second); d.Usage().Used < 24<<20; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the announced puts reserved %d bytes, want 24 MiB", d.Usage().Used)
		}
	}
	c := dial(t, n, "par-1")
	if r := roundTrip(t, c, wire.OpPut, 0, &wire.Request{Job: []byte("par-1"), Key: []byte("k"), Token: tok}, make([]byte, 4<<20)); r.Err() != nil {
		t.Fatalf("a fourth put into a tier less than half full: %v", r.Err())
	}
}
