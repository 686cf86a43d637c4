// Package nettest holds network helpers for tests of several packages.
package nettest

import (
	"net"
	"sync"
	"time"
)

// Squat keeps per idle connections open to addr from each of the loopback
// addresses ips (127.0.0.x: Linux routes the whole 127/8 to lo), sending
// nothing, each dialled again as soon as the server closes it, until stop
// closes; wg counts its goroutines. A connection closed within 10 ms of
// its dial (refused at accept) is dialled again after a pause of 2 ms, a
// failed dial after 5 ms, so a refusing server does not make it spin.
// Tests use it to hold a server's spare connection slots the way clients
// that connect and say nothing would.
func Squat(addr string, ips []string, per int, stop <-chan struct{}, wg *sync.WaitGroup) {
	for _, ip := range ips {
		for i := 0; i < per; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				squatOne(addr, ip, stop)
			}()
		}
	}
}

func squatOne(addr, ip string, stop <-chan struct{}) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: time.Second}
	buf := make([]byte, 1)
	for {
		select {
		case <-stop:
			return
		default:
		}
		nc, err := d.Dial("tcp", addr)
		if err != nil {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		start := time.Now()
		done := make(chan struct{})
		go func() {
			select {
			case <-stop:
			case <-done:
			}
			nc.Close()
		}()
		nc.Read(buf) // until the server closes it, or stop
		close(done)
		if time.Since(start) < 10*time.Millisecond {
			time.Sleep(2 * time.Millisecond)
		}
	}
}
