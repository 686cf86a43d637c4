package dataplane

import (
	"net"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/nvme"
	"github.com/pocketstore/pocket/wire"
)

// TestNVMeStagingHeldByPipelinedGets: a client that reads nothing
// sends, on each of a few connections, two gets of one large NVMe value.
// The first streams (at most 1 MiB held); the second, since one stream per
// connection runs, is read whole into staging memory. A handful of such
// connections hold every staging buffer, and another job's NVMe put and
// get fail "no space" until the write timeout resets them.
func TestNVMeStagingHeldByPipelinedGets(t *testing.T) { stagingHeldBy(t, 2, 10) }
func TestNVMeStagingHeldByStreams(t *testing.T)       { stagingHeldBy(t, 1, 70) }
func stagingHeldBy(t *testing.T, nGets, nHogs int) {
	const pool = 64 << 20
	tier := fileNVMe(t, nvme.Options{Size: 256 << 20, BufferPool: pool}, NVMeOptions{})
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", NVMe: tier, Net: netio.Config{Loops: 2}})
	big := make([]byte, 7<<20)
	h := dial(t, n, "hostile")
	if r := roundTrip(t, h, wire.OpPut, wire.FlagTierNVMe, &wire.Request{Job: []byte("hostile"), Key: []byte("big")}, big); r.Code != 0 {
		t.Fatal(r.Err())
	}
	v := dial(t, n, "victim")
	if r := roundTrip(t, v, wire.OpPut, wire.FlagTierNVMe, &wire.Request{Job: []byte("victim"), Key: []byte("small")}, make([]byte, 64<<10)); r.Code != 0 {
		t.Fatal(r.Err())
	}
	e := wire.NewEncoder()
	meta := e.Request(&wire.Request{Job: []byte("hostile"), Key: []byte("big")})
	var frames []byte
	for i := range nGets {
		frames = wire.AppendHeader(frames, &wire.Header{Op: wire.OpGet, Flags: wire.FlagTierNVMe, ID: uint64(i + 1), MetaLen: uint32(len(meta))})
		frames = append(frames, meta...)
	}
	hogs := nHogs
	for range hogs {
		nc, err := net.Dial("tcp", n.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		nc.(*net.TCPConn).SetReadBuffer(4096)
		defer nc.Close()
		if _, err := nc.Write(frames); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	if m, ok := tier.bufs.(interface{ InUse() int64 }); ok {
		t.Logf("staging in use: %d MiB of %d", m.InUse()>>20, pool>>20)
	}
	t.Logf("net stats %+v", n.Stats().Net)
	fails := 0
	for i := range 5 {
		r := roundTrip(t, v, wire.OpPut, wire.FlagTierNVMe, &wire.Request{Job: []byte("victim"), Key: []byte("p")}, make([]byte, 1<<20))
		if r.Code != 0 {
			fails++
			t.Logf("victim NVMe put %d: %v", i, r.Err())
		}
		r = roundTrip(t, v, wire.OpGet, wire.FlagTierNVMe, &wire.Request{Job: []byte("victim"), Key: []byte("small")}, nil)
		if r.Code != 0 {
			fails++
			t.Logf("victim NVMe get %d: %v", i, r.Err())
		}
	}
	if fails > 0 {
		t.Fatalf("%d of 10 victim NVMe requests failed while %d connections of another job read nothing (staging pool %d MiB)", fails, hogs, pool>>20)
	}
	_ = client.NewConn
}
