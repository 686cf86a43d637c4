package dataplane

import (
	"net"
	"strings"
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

// TestNVMeStagingShortIsBusy: while other jobs' puts hold every staging
// buffer (their payloads still arriving), a put and a get on the NVMe tier
// are refused busy, which the SDKs send again, and succeed once the
// buffers are free. On the old code both answered CodeNoSpace, which the
// SDKs return at once as "tier full" advice to delete values: a new
// user's trial had 9 of 12 parallel 10 MiB puts fail so on an empty tier
// with 16 MiB of staging.
func TestNVMeStagingShortIsBusy(t *testing.T) {
	const pool = 2 << 20
	tier := fileNVMe(t, nvme.Options{Size: 64 << 20, BufferPool: pool}, NVMeOptions{})
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", NVMe: tier})
	v := dial(t, n, "victim")
	if r := roundTrip(t, v, wire.OpPut, wire.FlagTierNVMe, &wire.Request{Job: []byte("victim"), Key: []byte("small")}, make([]byte, 64<<10)); r.Code != 0 {
		t.Fatal(r.Err())
	}
	// Two hogs, of two jobs, each announce a put of half the staging
	// memory (the most one value may take) and send part.
	var hogs []net.Conn
	for _, job := range []string{"hog1", "hog2"} {
		meta := wire.NewEncoder().Request(&wire.Request{Job: []byte(job), Key: []byte("slow")})
		frame := wire.AppendHeader(nil, &wire.Header{Op: wire.OpPut, Flags: wire.FlagTierNVMe, ID: 1, MetaLen: uint32(len(meta)), PayloadLen: pool / 2})
		frame = append(append(frame, meta...), make([]byte, 4096)...)
		hog, err := net.Dial("tcp", n.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer hog.Close()
		if _, err := hog.Write(frame); err != nil {
			t.Fatal(err)
		}
		hogs = append(hogs, hog)
	}
	time.Sleep(200 * time.Millisecond)
	put := roundTrip(t, v, wire.OpPut, wire.FlagTierNVMe, &wire.Request{Job: []byte("victim"), Key: []byte("p")}, make([]byte, 1<<20))
	get := roundTrip(t, v, wire.OpGet, wire.FlagTierNVMe, &wire.Request{Job: []byte("victim"), Key: []byte("small")}, nil)
	for what, r := range map[string]client.Response{"put": put, "get": get} {
		if r.Code != wire.CodeBusy || !strings.Contains(r.Err().Error(), "--nvme-staging") {
			t.Errorf("%s while another job's put holds the staging memory: %v; want busy naming --nvme-staging", what, r.Err())
		}
	}
	for _, hog := range hogs {
		hog.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := roundTrip(t, v, wire.OpPut, wire.FlagTierNVMe, &wire.Request{Job: []byte("victim"), Key: []byte("p")}, make([]byte, 1<<20))
		if r.Code == 0 {
			break
		}
		if r.Code != wire.CodeBusy || time.Now().After(deadline) {
			t.Fatalf("put after the hog left: %v", r.Err())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
