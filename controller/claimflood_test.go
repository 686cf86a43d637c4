package controller

import (
	"bufio"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// heapInUse returns the live heap after a collection.
func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestClaimedLengthsHoldNoMemory (a flood of frame headers): connections
// that each send a header claiming the control limit (4 MiB) and a few
// bytes of it make the controller hold memory for what they sent, not for
// what they claimed; and connections that each sent one whole 4 MiB frame
// (answered, the connection kept) hold no buffer of it
// while they idle. The old controller allocated the claimed length on the
// header and kept the buffer for the connection's life: 32 connections
// held 128 MiB in both cases.
func TestClaimedLengthsHoldNoMemory(t *testing.T) {
	const conns = 32
	// Every connection's frame admitted: unproven connections (these)
	// hold a quarter of MaxLargeFrameBytes together.
	c := newTest(t, Config{MaxConnsPerPeer: -1, MaxLargeFrameBytes: 4 * conns * wire.DefaultControlMaxMeta})
	a, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := wire.ControlLimits()
	h := wire.Header{Op: wire.OpStatus, ID: 1, MetaLen: uint32(lim.MaxMeta)}
	head := append(wire.AppendHeader(nil, &h), make([]byte, 100)...)
	base := heapInUse()
	cs := make([]net.Conn, conns)
	for i := range cs {
		if cs[i], err = net.Dial("tcp", a.String()); err != nil {
			t.Fatal(err)
		}
		defer cs[i].Close()
		if _, err := cs[i].Write(head); err != nil {
			t.Fatal(err)
		}
	}
	bound := uint64(conns) << 20 // 1 MiB a connection; 4 MiB claimed
	var most uint64
	for i := 0; i < 10; i++ {
		time.Sleep(50 * time.Millisecond)
		most = max(most, heapInUse()-min(base, heapInUse()))
	}
	if most > bound {
		t.Fatalf("%d connections that each claimed %d bytes and sent 100 grew the heap by %d bytes, want at most %d", conns, lim.MaxMeta, most, bound)
	}
	// The rest of each frame: zeros, answered, the connection kept; then nothing while they idle.
	rest := make([]byte, lim.MaxMeta-100)
	for _, conn := range cs {
		if _, err := conn.Write(rest); err != nil {
			t.Fatal(err)
		}
	}
	for i, conn := range cs {
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		rh, meta, err := wire.ReadControlFrame(bufio.NewReader(conn), &lim, nil)
		if err != nil || rh.ID != 1 {
			t.Fatalf("connection %d: reply to a 4 MiB frame of zeros: id %d, err %v (%v); want its reply", i, rh.ID, err, wire.ReplyError(&rh, meta))
		}
	}
	if grew := heapInUse() - min(base, heapInUse()); grew > bound {
		t.Fatalf("%d idle connections that each sent one 4 MiB frame hold %d bytes of heap, want at most %d", conns, grew, bound)
	}
}
