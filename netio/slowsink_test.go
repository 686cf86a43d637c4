package netio

import (
	"errors"
	"net"
	"testing"
	"time"
)

// A peer that announces a payload and sends it slower than MinSinkRate
// once SinkGrace has passed is closed with ErrSlowSink, whatever bytes
// keep trickling in (each one is progress against IdleTimeout); one that
// sends at a pace above the rate finishes, even past the grace. On the
// old code the trickling connection stayed open, holding its sink.
func TestSlowSinkClosed(t *testing.T) {
	s, h := startSinkServer(t, paceConfig)

	slow := dial(t, s)
	if _, err := slow.Write(sinkReq(1 << 20)); err != nil {
		t.Fatal(err)
	}
	steady := dial(t, s)
	if _, err := steady.Write(sinkReq(256 << 10)); err != nil {
		t.Fatal(err)
	}
	// slow: a byte every 50 ms (20 B/s); steady: 16 KiB every 50 ms
	// (320 KiB/s), done in 0.8 s, past the grace.
	trickleBesideSteady(t, h, slow, steady, pattern(256<<10, 7), 0)
	if st := s.Stats(); st.SlowSinks != 1 {
		t.Fatalf("SlowSinks %d, want 1", st.SlowSinks)
	}
}

// A peer cannot stop the pace by leaving replies unread: the loop pauses
// reading a connection whose queued output is over MaxOutbound, and that
// time counts against MinSinkRate like any other. A hostile trial paused
// its connections on purpose (a large reply before each put header,
// read a little at a time within WriteTimeout) while the pace started
// over at every pause, and held most of a node's space for a minute.
func TestSlowSinkPausedByItsPeer(t *testing.T) {
	s, h := startSinkServer(t, Config{Loops: 1, MaxInbound: 32 << 20, MaxOutbound: 64 << 10,
		MinSinkRate: 64 << 10, SinkGrace: 300 * time.Millisecond})
	c := dial(t, s)
	// A 16 MiB frame the handler echoes, far past the socket buffers and
	// MaxOutbound, then a sink's header and one byte of its payload.
	msg := append(frame(make([]byte, 16<<20)), sinkReq(1<<20)...)
	msg = append(msg, 1)
	go c.Write(msg)
	waitFor(t, "the connection paused", func() bool { return s.Stats().Paused > 0 })
	if err := nextClose(t, h.closeLog, 10*time.Second); !errors.Is(err, ErrSlowSink) {
		t.Fatalf("a sink paused by its unread replies closed with %v, want ErrSlowSink", err)
	}
}

// A peer is not blamed for the loop's own stall: the loop does not run
// for 1.5 s (here a task that sleeps; a stopped process, or one not
// scheduled, alike) while a peer that has sent part of an announced
// payload waits, then sends the rest at a good pace. Its put completes.
// On the old code the first sweep after the stall counted the stall
// against the peer's pace and closed it with ErrSlowSink.
func TestSlowSinkExcusesTheLoopsOwnStall(t *testing.T) {
	s, _ := startSinkServer(t, paceConfig)
	c := dial(t, s)
	payload := pattern(256<<10, 3)
	if _, err := c.Write(append(sinkReq(len(payload)), payload[:32<<10]...)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	stalled := make(chan struct{})
	s.loops[0].Post(func() {
		close(stalled)
		time.Sleep(1500 * time.Millisecond)
	})
	<-stalled
	time.Sleep(1600 * time.Millisecond)
	for off := 32 << 10; off < len(payload); off += 32 << 10 {
		if _, err := c.Write(payload[off : off+32<<10]); err != nil {
			t.Fatalf("the peer's payload after the loop's stall: %v (slow sinks closed: %d)", err, s.Stats().SlowSinks)
		}
		time.Sleep(50 * time.Millisecond)
	}
	buf := make([]byte, 6)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(buf); err != nil || string(buf) != "SINKOK" {
		t.Fatalf("the sink after the loop's stall: %q %v, want SINKOK (slow sinks closed: %d)", buf, err, s.Stats().SlowSinks)
	}
}

// paceConfig enforces a pace of 64 KiB/s after a 300 ms grace, sweeping
// every 100 ms.
var paceConfig = Config{Loops: 1, IdleTimeout: 400 * time.Millisecond, MinSinkRate: 64 << 10, SinkGrace: 300 * time.Millisecond}

// startSinkServer starts a server with cfg whose handler opens a sink on
// each sink request (sinkHandler).
func startSinkServer(t *testing.T, cfg Config) (*Server, *sinkHandler) {
	t.Helper()
	h := &sinkHandler{closeLog: newCloseLog()}
	s := start(t, cfg, h)
	h.srv.Store(s)
	return s, h
}

// A peer that sends most of an announced payload at once and then
// trickles the rest is closed once a window past the grace brings less
// than its share: bytes sent early are no credit for a trickle after
// them. One that keeps the pace after its burst finishes. On the old code
// the pace was only counted since the sink's start, and the burst's 3 MiB
// at 64 KiB/s held the sink for 48 s (a hostile re-check held an NVMe
// tier's whole staging memory so, and other tenants' puts failed busy).
func TestSlowSinkAfterABurstClosed(t *testing.T) {
	s, h := startSinkServer(t, paceConfig)
	burst := dial(t, s)
	if _, err := burst.Write(append(sinkReq(4<<20), pattern(3<<20, 3)...)); err != nil {
		t.Fatal(err)
	}
	steady := dial(t, s)
	payload := pattern(2<<20, 5)
	if _, err := steady.Write(append(sinkReq(len(payload)), payload[:1<<20]...)); err != nil {
		t.Fatal(err)
	}
	// burst: a byte every 50 ms; steady: 16 KiB every 50 ms (320 KiB/s).
	trickleBesideSteady(t, h, burst, steady, payload, 1<<20)
}

// trickleBesideSteady writes a byte to slow and 16 KiB of payload (from
// offset from) to steady every 50 ms, until slow's connection fails and
// steady has sent all; it fails the test unless slow is closed with
// ErrSlowSink within 10 s and steady's sink completes.
func trickleBesideSteady(t *testing.T, h *sinkHandler, slow, steady net.Conn, payload []byte, from int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var slowErr error
	for off := from; time.Now().Before(deadline); off += 16 << 10 {
		if slowErr == nil {
			_, slowErr = slow.Write([]byte{1})
		}
		if off < len(payload) {
			if _, err := steady.Write(payload[off : off+16<<10]); err != nil {
				t.Fatalf("steady sender: %v", err)
			}
		}
		if slowErr != nil && off >= len(payload) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if slowErr == nil {
		t.Fatal("trickling sender still connected after 10 s")
	}
	if err := nextClose(t, h.closeLog, 5*time.Second); !errors.Is(err, ErrSlowSink) {
		t.Fatalf("closed with %v, want ErrSlowSink", err)
	}
	buf := make([]byte, 6)
	steady.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := steady.Read(buf); err != nil || string(buf) != "SINKOK" {
		t.Fatalf("steady sender's sink: %q %v, want SINKOK", buf, err)
	}
}
