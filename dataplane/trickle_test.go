package dataplane

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/pocketstore/pocket/netio"
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
