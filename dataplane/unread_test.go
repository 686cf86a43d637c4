package dataplane

import (
	"net"
	"testing"
	"time"

	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/telemetry/metrics"
	"github.com/pocketstore/pocket/wire"
)

// TestUnreadRepliesBoundedAcrossConns: six connections each ask for a
// 1 KiB value again and again and read nothing. Each would stop at its own
// 4 MiB, but together they stop near the node's bound on unread replies
// (NodeConfig.Net.MaxOutboundTotal, `pocket node --max-unread`), which the
// node's metrics show; another client is served meanwhile. Without the
// bound the six held about 6 x 4 MiB.
func TestUnreadRepliesBoundedAcrossConns(t *testing.T) {
	// A pass reads at most passRead bytes of a connection's requests,
	// about 250 gets of 1 KiB.
	const hogs, bound, passRead = 6, 1 << 20, 16 << 10
	d, err := NewDRAM(64<<20, DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", DRAM: d,
		Net: netio.Config{Loops: 2, MaxOutboundTotal: bound, MaxReadPerPass: passRead}}, d)
	c := dial(t, n, "j")
	if r := roundTrip(t, c, wire.OpPut, 0, &wire.Request{Job: []byte("j"), Key: []byte("v")}, make([]byte, 1<<10)); r.Code != 0 {
		t.Fatal(r.Err())
	}
	meta := wire.NewEncoder().Request(&wire.Request{Job: []byte("j"), Key: []byte("v")})
	frame := append(wire.AppendHeader(nil, &wire.Header{Op: wire.OpGet, MetaLen: uint32(len(meta))}), meta...)
	for range hogs {
		hog, err := net.Dial("tcp", n.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer hog.Close()
		go func() {
			hog.SetWriteDeadline(time.Now().Add(20 * time.Second))
			for {
				if _, err := hog.Write(frame); err != nil {
					return // the node stopped reading us
				}
			}
		}()
	}
	// Settled: what the node reads stops growing (the kernel's socket
	// buffers fill first).
	deadline := time.Now().Add(15 * time.Second)
	for last, still := n.Stats().Net.BytesIn, 0; still < 4; {
		if time.Now().After(deadline) {
			t.Fatal("the node kept reading the hogs for 15 s")
		}
		time.Sleep(100 * time.Millisecond)
		if in := n.Stats().Net.BytesIn; in != last {
			last, still = in, 0
			continue
		}
		still++
	}
	fams := scrapeNode(t, n)
	unread, _ := fams.Value(metrics.NodeUnreadReplyBytes)
	// Past the bound each connection may add the replies to one pass's
	// reads (about 280 KiB) over the 64 KiB floor.
	if limit := float64(bound + hogs*(512<<10)); unread <= bound || unread > limit {
		t.Errorf("%s %.0f, want in (%d, %.0f]", metrics.NodeUnreadReplyBytes, unread, bound, limit)
	}
	if p, _ := fams.Value(metrics.NodeConnectionsPaused, "limit", "MaxOutboundTotal"); p < hogs {
		t.Errorf("%s{limit=MaxOutboundTotal} %.0f, want at least %d", metrics.NodeConnectionsPaused, p, hogs)
	}
	if r := roundTrip(t, c, wire.OpGet, 0, &wire.Request{Job: []byte("j"), Key: []byte("v")}, nil); r.Code != 0 || len(r.Payload) != 1<<10 {
		t.Fatalf("other client while %d hog: %v", hogs, r.Err())
	}
}
