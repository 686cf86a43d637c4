package netio

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// TestSlowDrainClosed: a peer that takes a large queued reply slower than
// MinDrainRate once DrainGrace has passed is closed with ErrSlowDrain and
// its references released, whatever it keeps reading (each read is
// progress against WriteTimeout); one that reads at a pace above the
// rate gets its replies whole, past the grace. On the old code the slow
// reader stayed open, holding its references: a hostile trial's three
// such connections held 180 MiB of a node's deleted values.
func TestSlowDrainClosed(t *testing.T) {
	h := &refHandler{closeLog: newCloseLog()}
	s := start(t, Config{Loops: 1, MinDrainRate: 1 << 20, DrainGrace: 300 * time.Millisecond, IdleTimeout: -1}, h)
	var req []byte
	for i := 0; i < 4; i++ {
		req = append(req, sizeReq(4<<20)...)
	}
	slow, steady := dial(t, s), dial(t, s)
	for _, c := range []net.Conn{slow, steady} {
		c.(*net.TCPConn).SetReadBuffer(64 << 10)
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan error, 1)
	go func() { // 256 KiB every 50 ms: 5 MiB/s
		buf := make([]byte, 256<<10)
		n := 0
		for n < 4*(4+4<<20) {
			steady.SetReadDeadline(time.Now().Add(5 * time.Second))
			k, err := io.ReadFull(steady, buf[:min(len(buf), 4*(4+4<<20)-n)])
			if n += k; err != nil {
				got <- err
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		got <- nil
	}()
	// 16 KiB every 50 ms: 320 KiB/s.
	buf := make([]byte, 16<<10)
	start := time.Now()
	var err error
	for err == nil && time.Since(start) < 10*time.Second {
		slow.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = io.ReadFull(slow, buf)
		time.Sleep(50 * time.Millisecond)
	}
	if err == nil {
		t.Fatal("a reader taking 320 KiB/s of 16 MiB queued still connected after 10 s")
	}
	if cerr := nextClose(t, h.closeLog, 5*time.Second); !errors.Is(cerr, ErrSlowDrain) {
		t.Fatalf("closed with %v, want ErrSlowDrain", cerr)
	}
	if err := <-got; err != nil {
		t.Fatalf("the reader at 5 MiB/s: %v", err)
	}
	if st := s.Stats(); st.SlowDrains != 1 {
		t.Fatalf("SlowDrains %d, want 1", st.SlowDrains)
	}
	waitFor(t, "every reference released", func() bool { total, once := h.released(t); return total == 8 && once == 8 })
}
