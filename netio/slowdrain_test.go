package netio

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// TestSlowDrainClosed: a peer that takes a large queued reply slower than
// MinDrainRate over a window of DrainGrace is closed with ErrSlowDrain and
// its references released, whatever it keeps reading (each read is
// progress against WriteTimeout): one that trickles from the start, and
// one that reads most of its replies fast and trickles the rest (the
// bytes taken fast are no credit for the later windows: a re-check held
// two deleted 64 MiB values so). One that reads at a pace above the rate
// gets its replies whole, past the grace. On the code before, the slow
// reader stayed open, holding its references: a hostile trial's three
// such connections held 180 MiB of a node's deleted values.
func TestSlowDrainClosed(t *testing.T) {
	h := &refHandler{closeLog: newCloseLog()}
	s := start(t, Config{Loops: 1, MinDrainRate: 1 << 20, DrainGrace: 300 * time.Millisecond, IdleTimeout: -1}, h)
	var req []byte
	for i := 0; i < 8; i++ {
		req = append(req, sizeReq(4<<20)...)
	}
	const whole = 8 * (4 + 4<<20)
	slow, burst, steady := dial(t, s), dial(t, s), dial(t, s)
	for _, c := range []net.Conn{slow, burst, steady} {
		c.(*net.TCPConn).SetReadBuffer(64 << 10)
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan error, 1)
	go func() { got <- paced(steady, 256<<10, 0, whole) }() // 5 MiB/s
	cut := make(chan error, 1)
	go func() { cut <- paced(burst, 16<<10, 16<<20, 0) }() // 16 MiB at once, then 320 KiB/s
	if err := paced(slow, 16<<10, 16<<10, 0); err == nil { // 320 KiB/s
		t.Fatal("a reader taking 320 KiB/s of 32 MiB queued still connected after 10 s")
	}
	if err := <-cut; err == nil {
		t.Fatal("a reader that took 16 MiB at once and then 320 KiB/s still connected after 10 s")
	}
	for i := 0; i < 2; i++ {
		if cerr := nextClose(t, h.closeLog, 5*time.Second); !errors.Is(cerr, ErrSlowDrain) {
			t.Fatalf("closed with %v, want ErrSlowDrain", cerr)
		}
	}
	if err := <-got; err != nil {
		t.Fatalf("the reader at 5 MiB/s: %v", err)
	}
	if st := s.Stats(); st.SlowDrains != 2 {
		t.Fatalf("SlowDrains %d, want 2", st.SlowDrains)
	}
	waitFor(t, "every reference released", func() bool { total, once := h.released(t); return total == 24 && once == 24 })
}

// paced reads c: first bytes at once, then step bytes every 50 ms, until
// it has read want bytes (nil) or 10 s have passed (nil), or a read fails
// (its error). want 0: read until a read fails or 10 s.
func paced(c net.Conn, step, first, want int) error {
	buf := make([]byte, max(step, first))
	n, end := 0, time.Now().Add(10*time.Second)
	for want == 0 || n < want {
		if time.Now().After(end) {
			return nil
		}
		k := step
		if n < first {
			k = first - n
		}
		if want > 0 {
			k = min(k, want-n)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		r, err := io.ReadFull(c, buf[:min(k, len(buf))])
		if n += r; err != nil {
			return err
		}
		if n >= first {
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}
