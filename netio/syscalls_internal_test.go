package netio

import (
	"bytes"
	"testing"

	"golang.org/x/sys/unix"
)

// A loop's writev and sink reads are raw system calls from rawFrom bytes
// on and plain ones below: both paths move the same bytes, count them, and answer
// a drained or full non-blocking socket with unix.EAGAIN itself (the loop
// compares errors with ==).
func TestReadWritevBothPaths(t *testing.T) {
	for _, size := range []int{rawFrom / 16, rawFrom, 3 * rawFrom} {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fds[0])
		defer unix.Close(fds[1])
		for _, fd := range fds {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4*rawFrom); err != nil {
				t.Fatal(err)
			}
		}
		l := &Loop{iov: make([]unix.Iovec, 2)}
		out := bytes.Repeat([]byte("0123456789abcdef"), size/16)
		half := len(out) / 2
		l.iov[0].Base, l.iov[1].Base = &out[0], &out[half]
		l.iov[0].SetLen(half)
		l.iov[1].SetLen(len(out) - half)
		n, err := l.writev(fds[0], 2, len(out))
		if err != nil || n <= 0 {
			t.Fatalf("size %d: writev = %d, %v", size, n, err)
		}
		in := make([]byte, len(out)+rawFrom)
		got := 0
		for got < n {
			k, err := l.read(fds[1], in[got:], size >= rawFrom)
			if err != nil {
				t.Fatalf("size %d: read after %d of %d bytes: %v", size, got, n, err)
			}
			got += k
		}
		if !bytes.Equal(in[:got], out[:n]) {
			t.Fatalf("size %d: read back different bytes", size)
		}
		if k, err := l.read(fds[1], in, size >= rawFrom); err != unix.EAGAIN || k != 0 {
			t.Errorf("size %d: read of a drained socket = %d, %v; want 0, EAGAIN", size, k, err)
		}
		if l.stats.bytesOut.Load() != uint64(n) || l.stats.bytesIn.Load() != uint64(got) {
			t.Errorf("size %d: counted %d out, %d in; want %d and %d", size, l.stats.bytesOut.Load(), l.stats.bytesIn.Load(), n, got)
		}
		for {
			if _, err = l.writev(fds[0], 2, len(out)); err != nil {
				break
			}
		}
		if err != unix.EAGAIN {
			t.Errorf("size %d: writev to a full socket: %v, want EAGAIN", size, err)
		}
	}
}
