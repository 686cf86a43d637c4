package dataplane

import (
	"net"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/nvme"
	"github.com/pocketstore/pocket/telemetry/metrics"
	"github.com/pocketstore/pocket/wire"
)

// unreadRig is a node holding one value of size bytes under "v" for job
// "j", and a client of it.
func unreadRig(t *testing.T, size int, net netio.Config) (*Node, *client.Conn) {
	t.Helper()
	d, err := NewDRAM(64<<20, DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", DRAM: d, Net: net}, d)
	c := dial(t, n, "j")
	if r := roundTrip(t, c, wire.OpPut, 0, &wire.Request{Job: []byte("j"), Key: []byte("v")}, make([]byte, size)); r.Code != 0 {
		t.Fatal(r.Err())
	}
	return n, c
}

// hogGets opens k connections that send gets of "v" as fast as the node
// takes them and read nothing, and waits until the node has read nothing
// new for 400 ms (the kernel's socket buffers fill first).
func hogGets(t *testing.T, n *Node, k int) { t.Helper(); hogGetsFlags(t, n, k, 0) }

// hogGetsFlags is hogGets with the gets' header flags.
func hogGetsFlags(t *testing.T, n *Node, k int, flags uint16) {
	t.Helper()
	meta := wire.NewEncoder().Request(&wire.Request{Job: []byte("j"), Key: []byte("v")})
	frame := append(wire.AppendHeader(nil, &wire.Header{Op: wire.OpGet, Flags: flags, MetaLen: uint32(len(meta))}), meta...)
	for range k {
		hog, err := net.Dial("tcp", n.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { hog.Close() })
		go func() {
			hog.SetWriteDeadline(time.Now().Add(20 * time.Second))
			for {
				if _, err := hog.Write(frame); err != nil {
					return // the node stopped reading us
				}
			}
		}()
	}
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
}

// TestUnreadRepliesBoundedAcrossConns: six connections each ask for a
// 1 KiB value again and again and read nothing. Each would stop at its own
// 4 MiB, but together they stop near the node's bound on unread replies
// (NodeConfig.Net.MaxOutboundTotal, `pocket node --max-unread`), which the
// node's metrics show; another client is served meanwhile. Without the
// bound the six held about 6 x 4 MiB.
func TestUnreadRepliesBoundedAcrossConns(t *testing.T) {
	const hogs, bound = 6, 1 << 20
	n, c := unreadRig(t, 1<<10, netio.Config{Loops: 2, MaxOutboundTotal: bound})
	hogGets(t, n, hogs)
	fams := scrapeNode(t, n)
	unread, _ := fams.Value(metrics.NodeUnreadReplyBytes)
	// Past the bound each connection may hold the 64 KiB floor and one
	// more reply.
	if limit := float64(bound + hogs*(netio.OutboundFloor+2<<10)); unread <= bound || unread > limit {
		t.Errorf("%s %.0f, want in (%d, %.0f]", metrics.NodeUnreadReplyBytes, unread, bound, limit)
	}
	if p, _ := fams.Value(metrics.NodeConnectionsPaused, "limit", "MaxOutboundTotal"); p < hogs {
		t.Errorf("%s{limit=MaxOutboundTotal} %.0f, want at least %d", metrics.NodeConnectionsPaused, p, hogs)
	}
	if r := roundTrip(t, c, wire.OpGet, 0, &wire.Request{Job: []byte("j"), Key: []byte("v")}, nil); r.Code != 0 || len(r.Payload) != 1<<10 {
		t.Fatalf("other client while %d hog: %v", hogs, r.Err())
	}
}

// TestUnreadRepliesBoundedPerConn: one connection asks for a 16 KiB value
// (the largest a reply copies rather than sends by reference) again and
// again and reads nothing. It stops within one reply of its own bound
// (netio's MaxOutbound, 4 MiB): the node answers no more of a
// connection's requests while its output is over the bound. When the
// bound was checked only after each read, one read of about 3,700 such
// requests (256 KiB) queued about 60 MB of copies on the connection.
func TestUnreadRepliesBoundedPerConn(t *testing.T) {
	const size = smallCopy
	n, c := unreadRig(t, size, netio.Config{Loops: 2})
	hogGets(t, n, 1)
	unread, _ := scrapeNode(t, n).Value(metrics.NodeUnreadReplyBytes)
	if limit := float64(netio.DefaultMaxOutbound + size + 1<<10); unread <= netio.DefaultMaxOutbound/2 || unread > limit {
		t.Errorf("%s %.0f, want in (%d, %.0f]", metrics.NodeUnreadReplyBytes, unread, netio.DefaultMaxOutbound/2, limit)
	}
	if r := roundTrip(t, c, wire.OpGet, 0, &wire.Request{Job: []byte("j"), Key: []byte("v")}, nil); r.Code != 0 || len(r.Payload) != size {
		t.Fatalf("other client: %v", r.Err())
	}
}

// TestUnreadNVMeRepliesBoundedPerConn is TestUnreadRepliesBoundedPerConn
// with the value on the NVMe tier, whose gets answer when their reads
// complete, after the check before each frame.
func TestUnreadNVMeRepliesBoundedPerConn(t *testing.T) {
	const size = smallCopy
	tier := fileNVMe(t, nvme.Options{Size: 64 << 20, BufferPool: 64 << 20}, NVMeOptions{})
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", NVMe: tier, Net: netio.Config{Loops: 2}}, tier)
	c := dial(t, n, "j")
	req := &wire.Request{Job: []byte("j"), Key: []byte("v")}
	if r := roundTrip(t, c, wire.OpPut, wire.FlagTierNVMe, req, make([]byte, size)); r.Code != 0 {
		t.Fatal(r.Err())
	}
	hogGetsFlags(t, n, 1, wire.FlagTierNVMe)
	unread, _ := scrapeNode(t, n).Value(metrics.NodeUnreadReplyBytes)
	if limit := float64(netio.DefaultMaxOutbound + size + 1<<10); unread <= netio.DefaultMaxOutbound/2 || unread > limit {
		t.Errorf("%s %.0f, want in (%d, %.0f]", metrics.NodeUnreadReplyBytes, unread, netio.DefaultMaxOutbound/2, limit)
	}
	if r := roundTrip(t, c, wire.OpGet, wire.FlagTierNVMe, req, nil); r.Code != 0 || len(r.Payload) != size {
		t.Fatalf("other client: %v", r.Err())
	}
}
