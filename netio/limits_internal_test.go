package netio

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestPeerKey(t *testing.T) {
	v6 := func(s string) unix.Sockaddr {
		return &unix.SockaddrInet6{Addr: netip.MustParseAddr(s).As16(), Port: 9}
	}
	for _, tc := range []struct {
		sa   unix.Sockaddr
		want string
	}{
		{&unix.SockaddrInet4{Addr: [4]byte{10, 1, 2, 3}, Port: 9}, "10.1.2.3"},
		{v6("::ffff:10.1.2.3"), "10.1.2.3"},
		{v6("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::"},
		{v6("::1"), "::"},
	} {
		if got := peerKey(tc.sa).String(); got != tc.want {
			t.Errorf("peerKey(%v) = %s, want %s", tc.sa, got, tc.want)
		}
	}
}

func TestLimitDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	if c.MaxConnsPerPeer != DefaultMaxConnsPerPeer || c.IdleTimeout != DefaultIdleTimeout ||
		c.WriteTimeout != DefaultWriteTimeout || c.Logger == nil {
		t.Errorf("defaults %d %v %v %v", c.MaxConnsPerPeer, c.IdleTimeout, c.WriteTimeout, c.Logger)
	}
	c = Config{MaxConnsPerPeer: -1, IdleTimeout: -1, WriteTimeout: -1}.withDefaults()
	if c.MaxConnsPerPeer != -1 || c.IdleTimeout != -1 || c.WriteTimeout != -1 {
		t.Errorf("negative (off) not kept: %d %v %v", c.MaxConnsPerPeer, c.IdleTimeout, c.WriteTimeout)
	}
	for _, tc := range []struct {
		idle, write, want time.Duration
	}{
		{DefaultIdleTimeout, DefaultWriteTimeout, time.Second},
		{-1, -1, 0},
		{-1, 400 * time.Millisecond, 100 * time.Millisecond},
		{200 * time.Millisecond, time.Minute, 50 * time.Millisecond},
		{time.Microsecond, -1, time.Millisecond},
	} {
		if got := sweepPeriod(Config{IdleTimeout: tc.idle, WriteTimeout: tc.write}); got != tc.want {
			t.Errorf("sweepPeriod(idle %v, write %v) = %v, want %v", tc.idle, tc.write, got, tc.want)
		}
	}
}

// TestTimerDisarmedWithoutConns: a loop with no connections has no timer
// armed, so an idle server is never woken.
func TestTimerDisarmedWithoutConns(t *testing.T) {
	s := start(t, Config{Loops: 1, IdleTimeout: 40 * time.Millisecond, Logger: slog.New(&logRec{})}, newEcho())
	c := dial(t, s)
	roundTrip(t, c, frame(nil), frame(nil))
	closedWithin(t, c, 2*time.Second)
	time.Sleep(50 * time.Millisecond) // one more sweep finds no connection
	wakeups := func() uint64 { return s.Stats().Passes }
	before := wakeups()
	time.Sleep(200 * time.Millisecond)
	if n := wakeups() - before; n > 0 {
		t.Errorf("%d passes of a loop with no connections in 200 ms", n)
	}
	var armed unix.ItimerSpec
	done := make(chan error)
	s.loops[0].Post(func() { done <- unix.TimerfdGettime(s.loops[0].tmfd, &armed) })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if armed.Value.Nano() != 0 {
		t.Errorf("timer armed for %v with no connections", time.Duration(armed.Value.Nano()))
	}
}
