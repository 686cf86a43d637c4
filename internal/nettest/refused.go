package nettest

import (
	"fmt"
	"sync"
	"syscall"
	"testing"
)

// RefusedAddr returns a loopback address ("127.0.0.1:PORT") at which a
// dial is refused for the rest of the test: ReserveAddr's, released at
// the test's cleanup.
func RefusedAddr(t testing.TB) string {
	t.Helper()
	a, release := ReserveAddr(t)
	t.Cleanup(release)
	return a
}

// ReserveAddr returns a loopback address at which a dial is refused and
// which no other socket can take until release: a TCP socket bound there,
// not listening, without SO_REUSEADDR. A closed listener's address is not
// enough: a test package running alongside can take the freed port and
// answer at it (two CI runs failed so, one where a storage node answered a
// test's "no controller" address). release may be called more than once.
func ReserveAddr(t testing.TB) (addr string, release func()) {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	var once sync.Once
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port), func() { once.Do(func() { syscall.Close(fd) }) }
}
