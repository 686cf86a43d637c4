package netio

// Hostile review of 5618099 (loops watch each other, nudge.go).
// TestHostilePendingAllocates and TestHostileWatchAllocatesPerRequest
// failed on 5618099: a look heap-allocated its closure and buffers every
// time, against doc.go's "the loop allocate[s] nothing per request in
// steady state". The other tests are probes that found no defect:
// ListenCloseCycles (2-4 loops, BusyPoll, LockOSThread, Close mid-traffic:
// no panic or leak, no look true after close), PeekTakesNothing (level-
// triggered registrations: looks take no event), PeekDuringWake (looks
// racing the parked loop's own poll lose no wake-up on this kernel).
// A look is made with a watcher's own buffers; the tests use a Loop of
// their own as the watcher (watcher).

import (
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestHostileListenCloseCycles: servers of 2-4 loops with traffic on
// several loops, closed mid-traffic, many times: no panic (a nudge on the
// closed channel), no goroutine left behind.
func TestHostileListenCloseCycles(t *testing.T) {
	before := runtime.NumGoroutine()
	for cycle := 0; cycle < 30; cycle++ {
		loops := 2 + cycle%3
		cfg := Config{Loops: loops}
		switch cycle % 6 {
		case 4:
			cfg.BusyPoll = 50 * time.Microsecond
		case 5:
			cfg.LockOSThread = true
		}
		h := newEcho()
		s, err := Listen("127.0.0.1:0", cfg, h)
		if err != nil {
			t.Fatal(err)
		}
		var conns []net.Conn
		for i := 0; i < 8; i++ {
			c, err := net.Dial("tcp", s.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for i, c := range conns {
			if i%2 == 1 {
				continue // idle: its loop may park watched
			}
			wg.Add(1)
			go func(c net.Conn) {
				defer wg.Done()
				f := frame(pattern(100, 1))
				buf := make([]byte, len(f))
				for {
					select {
					case <-stop:
						return
					default:
					}
					c.SetDeadline(time.Now().Add(2 * time.Second))
					if _, err := c.Write(f); err != nil {
						return
					}
					if _, err := io.ReadFull(c, buf); err != nil {
						return
					}
				}
			}(c)
		}
		time.Sleep(5 * time.Millisecond)
		s.Close()
		close(stop)
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
		for _, l := range s.loops {
			if watcher().pending(l) {
				t.Errorf("cycle %d: pending() true on a closed loop", cycle)
			}
		}
	}
	waitFor(t, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= before })
}

// TestHostilePeekTakesNothing: looking at a parked loop many times, with
// requests waiting on it, takes none of its events: every request is
// answered.
func TestHostilePeekTakesNothing(t *testing.T) {
	h := newEcho()
	s := start(t, Config{Loops: 2}, h)
	on := connsOnLoops(t, s, h)
	waitFor(t, "both loops parked", func() bool { return s.parked.Load() == 2 })
	w := watcher()
	procs := runtime.GOMAXPROCS(1)
	_, err := on[1].Write(frame([]byte("x")))
	hits := 0
	for i := 0; i < 1000; i++ {
		if s.loops[1].parkedOpen.Load() && w.pending(s.loops[1]) {
			hits++
		}
	}
	runtime.GOMAXPROCS(procs)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pending seen %d of 1000 looks", hits)
	readFrame(t, on[1], frame([]byte("x")))
	for i := 0; i < 200; i++ {
		roundTrip(t, on[i%2], frame([]byte("y")), frame([]byte("y")))
	}
}

// TestHostilePendingAllocates: a look is made up to every parkedPeekEvery
// per loop while another loop is parked with connections; it should
// allocate nothing (the park itself was made allocation-free).
func TestHostilePendingAllocates(t *testing.T) {
	s := start(t, Config{Loops: 2}, newEcho())
	l, w := s.loops[1], watcher()
	if a := testing.AllocsPerRun(100, func() { w.pending(l) }); a != 0 {
		t.Errorf("pending() allocates %v objects per look, want 0", a)
	}
}

// mallocsPerTrip returns the process's heap allocations per round trip
// over n round trips on c, client included.
func mallocsPerTrip(t *testing.T, c net.Conn, n int) float64 {
	t.Helper()
	f := frame(pattern(64, 3))
	resp := make([]byte, len(f))
	c.SetDeadline(time.Time{})
	for i := 0; i < 100; i++ { // warm up
		c.Write(f)
		io.ReadFull(c, resp)
	}
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	for i := 0; i < n; i++ {
		if _, err := c.Write(f); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, resp); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&b)
	return float64(b.Mallocs-a.Mallocs) / float64(n)
}

// TestHostileWatchAllocatesPerRequest: doc.go promises the loops allocate
// nothing per request in steady state (0 allocs/op in BenchmarkEcho).
// With a second loop parked holding one idle connection, the serving
// loop's looks at it (watchParked -> pending) allocate on every look.
func TestHostileWatchAllocatesPerRequest(t *testing.T) {
	h := newEcho()
	s := start(t, Config{Loops: 2}, h)
	on := connsOnLoops(t, s, h)
	waitFor(t, "loop 1 parked with its connection", func() bool { return s.loops[1].parkedOpen.Load() })
	const n = 3000
	watched := mallocsPerTrip(t, on[0], n)
	on[1].Close()
	waitFor(t, "loop 1 without connections", func() bool { return s.Stats().Open == 1 && s.parked.Load() <= 1 })
	alone := mallocsPerTrip(t, on[0], n)
	t.Logf("allocations per round trip: %.3f with loop 1 parked holding a connection, %.3f without", watched, alone)
	if watched > alone+0.05 {
		t.Errorf("%.3f allocations per round trip while another loop is parked with a connection, %.3f otherwise: watchParked's looks allocate", watched, alone)
	}
}

// TestHostilePeekDuringWake: looks at loop 1 made continuously while its
// connection ping-pongs (so some look overlaps the loop's own poll right
// after the netpoller woke it) never leave a request unanswered.
func TestHostilePeekDuringWake(t *testing.T) {
	h := newEcho()
	s := start(t, Config{Loops: 2}, h)
	on := connsOnLoops(t, s, h)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	w := watcher()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			w.pending(s.loops[1])
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	f := frame(pattern(16, 5))
	resp := make([]byte, len(f))
	slow := 0
	deadline := time.Now().Add(time.Second)
	trips := 0
	for time.Now().Before(deadline) {
		t0 := time.Now()
		on[1].SetDeadline(t0.Add(3 * time.Second))
		if _, err := on[1].Write(f); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(on[1], resp); err != nil {
			t.Fatalf("round trip %d: %v (a wake-up lost to a look?)", trips, err)
		}
		if time.Since(t0) > 50*time.Millisecond {
			slow++
		}
		trips++
	}
	t.Logf("%d round trips, %d over 50 ms, %d nudges", trips, slow, s.Stats().Nudges)
}

// watcher is a Loop that makes looks (pending) from a test goroutine,
// with buffers of its own.
func watcher() *Loop { return new(Loop) }
