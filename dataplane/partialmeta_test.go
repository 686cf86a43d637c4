package dataplane

import (
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// TestPartialMetaHoldsLittle: peers with no token open connections and send
// each a request header announcing 64 KiB of metadata (the frame limit,
// 24 times what any request's can be), then all of it but one byte. The
// node must not keep a large buffer per such connection: 400 of them may
// cost it at most 16 MiB of heap.
func TestPartialMetaHoldsLittle(t *testing.T) {
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", DRAM: mustDRAM(t, 16<<20), Guard: fakeGuard{}, Net: netio.Config{Loops: 2}})
	meta := 1 << 16
	f := wire.AppendHeader(nil, &wire.Header{Op: wire.OpGet, ID: 1, MetaLen: uint32(meta)})
	f = append(f, make([]byte, meta-1)...)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const conns = 400
	var cs []net.Conn
	refused := 0
	for range conns {
		c, err := net.Dial("tcp", n.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(f)
		cs = append(cs, c)
	}
	time.Sleep(500 * time.Millisecond)
	runtime.GC()
	runtime.ReadMemStats(&after)
	deadline := time.Now().Add(200 * time.Millisecond)
	for _, c := range cs {
		c.SetReadDeadline(deadline)
		if r, err := client.NewConn(c, client.ConnOptions{}).Recv(); err == nil && r.Code == wire.CodeTooLarge {
			refused++
		}
	}
	grew := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("%d connections with a partial 64 KiB request: heap in use grew %d KiB (%d KiB each); %d refused at the header", conns, grew>>10, grew/conns>>10, refused)
	if grew > 16<<20 {
		t.Fatalf("heap grew %d MiB for %d connections holding partial requests", grew>>20, conns)
	}
}

func mustDRAM(t *testing.T, capacity int64) *DRAM {
	d, err := NewDRAM(capacity, DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}
