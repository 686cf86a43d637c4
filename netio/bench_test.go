package netio

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// benchEcho measures one client ping-ponging frames of size bytes, depth at
// a time. Allocations are counted over the whole process, client included,
// so 0 allocs/op proves the server path allocates nothing.
func benchEcho(b *testing.B, cfg Config, h Handler, size, depth int) {
	s := start(b, cfg, h)
	c := dial(b, s)
	f := frame(pattern(size, 1))
	var req []byte
	for i := 0; i < depth; i++ {
		req = append(req, f...)
	}
	resp := make([]byte, len(req))
	roundTrip(b, c, req, req) // warm the pools
	c.SetDeadline(time.Time{})
	b.SetBytes(int64(len(req)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, resp); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*depth)/b.Elapsed().Seconds(), "frames/s")
}

func BenchmarkEcho(b *testing.B) {
	for _, size := range []int{64, 1 << 10, 16 << 10} {
		for _, depth := range []int{1, 16} {
			b.Run(fmt.Sprintf("size=%d/depth=%d", size, depth), func(b *testing.B) {
				benchEcho(b, Config{Loops: 1}, newEcho(), size, depth)
			})
		}
	}
}

// getHandler answers each frame like a GET: a copied header, then the
// value by reference straight from "slab" memory.
type getHandler struct {
	*closeLog
	value []byte
}

func (h *getHandler) OnData(c *Conn, in []byte) (int, error) {
	used := 0
	for len(in)-used >= 4 {
		n := int(in[used])<<24 | int(in[used+1])<<16 | int(in[used+2])<<8 | int(in[used+3])
		if len(in)-used-4 < n {
			break
		}
		c.Write(in[used : used+4])
		c.WriteRef(h.value[:n], nil)
		used += 4 + n
	}
	return used, nil
}

func BenchmarkWriteRef(b *testing.B) {
	for _, depth := range []int{1, 16} {
		b.Run(fmt.Sprintf("size=1024/depth=%d", depth), func(b *testing.B) {
			benchEcho(b, Config{Loops: 1}, &getHandler{newCloseLog(), pattern(1<<10, 1)}, 1<<10, depth)
		})
	}
}

// BenchmarkPingPong compares the ways an idle loop waits: parked in the Go
// netpoller (park, the default), blocked in epoll_wait (syscall), or
// spinning first (busypoll), each also with the loop locked to its OS
// thread and with one loop instead of one per CPU. Clients use plain
// net.Conn, each sending one 1 KiB frame and waiting for the echo.
func BenchmarkPingPong(b *testing.B) {
	modes := []struct {
		name string
		cfg  Config
	}{
		{"park", Config{}},
		{"syscall", Config{WaitInSyscall: true}},
		{"syscall-locked", Config{WaitInSyscall: true, LockOSThread: true}},
		{"busypoll-50us", Config{BusyPoll: 50 * time.Microsecond}},
		{"busypoll-50us-locked", Config{BusyPoll: 50 * time.Microsecond, LockOSThread: true}},
		// One loop leaves the second core to the clients.
		{"park-1loop", Config{Loops: 1}},
		{"syscall-1loop", Config{Loops: 1, WaitInSyscall: true}},
		{"busypoll-50us-1loop", Config{Loops: 1, BusyPoll: 50 * time.Microsecond}},
	}
	for _, m := range modes {
		for _, conns := range []int{1, 50} {
			b.Run(fmt.Sprintf("%s/conns=%d", m.name, conns), func(b *testing.B) {
				pingPong(b, m.cfg, conns)
			})
		}
	}
}

func pingPong(b *testing.B, cfg Config, conns int) {
	s := start(b, cfg, newEcho())
	pool := make(chan net.Conn, conns)
	for i := 0; i < conns; i++ {
		pool <- dial(b, s)
	}
	f := frame(pattern(1<<10-4, 2))
	b.SetBytes(int64(len(f)))
	b.ReportAllocs()
	b.SetParallelism((conns + 1) / 2) // GOMAXPROCS 2 here: conns goroutines
	if conns == 1 {
		b.SetParallelism(1)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := <-pool
		defer func() { pool <- c }()
		resp := make([]byte, len(f))
		for pb.Next() {
			if _, err := c.Write(f); err != nil {
				b.Error(err)
				return
			}
			if _, err := io.ReadFull(c, resp); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
