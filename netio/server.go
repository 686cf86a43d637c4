package netio

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Server is a set of event loops serving one TCP address.
type Server struct {
	cfg   Config
	h     Handler
	loops []*Loop
	addr  *net.TCPAddr

	open   atomic.Int64  // connections open over all loops, for MaxConns
	nextID atomic.Uint64 // last connection id handed out
	peers  peerTable     // open connections by peer, for MaxConnsPerPeer
	owners ownerTable    // proven connections by owner, for MaxProvenPerOwner

	reserved atomic.Int64 // open reserve connections, for ReserveConns
	queued   atomic.Int64 // output queued on all connections, for MaxOutboundTotal
	rpeers   peerTable    // open reserve connections by peer (reserve.go)

	closeOnce sync.Once
	wg        sync.WaitGroup

	// Loops parked with connections open, and the nudger's channel (nil
	// with one loop or WaitInSyscall); see nudge.go.
	parked atomic.Int32
	nudges chan struct{}
	nudged atomic.Uint64
}

// Listen binds addr ("host:port"; port 0 picks one) on Config.Loops
// SO_REUSEPORT listeners, one per loop, and starts the loops. The kernel
// spreads new connections over the listeners, so a connection is accepted,
// served and closed by one loop with no hand-off between goroutines.
func Listen(addr string, cfg Config, h Handler) (*Server, error) {
	cfg = cfg.withDefaults()
	sa, family, err := resolve(addr)
	if err != nil {
		return nil, err
	}
	if err := exclusive(family, sa); err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	s := &Server{cfg: cfg, h: h}
	for i := 0; i < cfg.Loops; i++ {
		lnfd, err := listenFD(family, sa)
		if err == nil && i == 0 {
			// Later listeners must join the port the first one got.
			sa, err = boundAddr(lnfd)
		}
		var l *Loop
		if err == nil {
			l, err = newLoop(s, i, lnfd)
		}
		if err != nil {
			if lnfd >= 0 {
				unix.Close(lnfd)
			}
			for _, l := range s.loops {
				l.closeFDs()
			}
			return nil, err
		}
		s.loops = append(s.loops, l)
	}
	s.addr = tcpAddr(sa)
	s.owners.slots, s.owners.loops = cfg.MaxConns, len(s.loops)
	s.startNudger()
	for _, l := range s.loops {
		s.wg.Add(1)
		go l.run()
	}
	return s, nil
}

// resolve turns "host:port" into a socket address. An empty host listens on
// all IPv4 addresses.
func resolve(addr string) (unix.Sockaddr, int, error) {
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, 0, fmt.Errorf("%w %q: %w", ErrBadAddress, addr, err)
	}
	if ta.IP == nil || ta.IP.To4() != nil {
		sa := &unix.SockaddrInet4{Port: ta.Port}
		if ta.IP != nil {
			copy(sa.Addr[:], ta.IP.To4())
		}
		return sa, unix.AF_INET, nil
	}
	sa := &unix.SockaddrInet6{Port: ta.Port}
	copy(sa.Addr[:], ta.IP.To16())
	return sa, unix.AF_INET6, nil
}

// exclusive checks that no other socket listens on sa (a fixed port) by
// binding it once without SO_REUSEPORT. The loops' listeners share their
// port through SO_REUSEPORT, which would as readily let a second process
// (a node started twice with one --listen) join the group and take half
// of the new connections, so that clients' requests landed, at random, on
// an empty node. Such a bind fails with EADDRINUSE, as does one beside a
// socket that listens without SO_REUSEPORT; the probe is closed before the
// listeners bind, so two processes starting in the same instant can still
// both pass (the controller then refuses the second node's registration,
// see controller/incarnation.go).
func exclusive(family int, sa unix.Sockaddr) error {
	if port(sa) == 0 {
		return nil
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return os.NewSyscallError("setsockopt SO_REUSEADDR", err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		if errors.Is(err, unix.EADDRINUSE) {
			return fmt.Errorf("%w: another process listens there (a second node on one address?)", os.NewSyscallError("bind", err))
		}
		return os.NewSyscallError("bind", err)
	}
	return nil
}

// port is sa's port.
func port(sa unix.Sockaddr) int {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return a.Port
	case *unix.SockaddrInet6:
		return a.Port
	}
	return 0
}

// listenFD opens a non-blocking SO_REUSEPORT listening socket on sa.
func listenFD(family int, sa unix.Sockaddr) (int, error) {
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	if err := listenSetup(fd, sa); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func listenSetup(fd int, sa unix.Sockaddr) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return os.NewSyscallError("setsockopt SO_REUSEADDR", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		return os.NewSyscallError("setsockopt SO_REUSEPORT", err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		return os.NewSyscallError("bind", err)
	}
	if err := unix.Listen(fd, unix.SOMAXCONN); err != nil {
		return os.NewSyscallError("listen", err)
	}
	return nil
}

// boundAddr returns the address fd is bound to (the real port for port 0).
func boundAddr(fd int) (unix.Sockaddr, error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, os.NewSyscallError("getsockname", err)
	}
	return sa, nil
}

func tcpAddr(sa unix.Sockaddr) *net.TCPAddr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	}
	return nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.addr }

// Close stops accepting, closes every connection (each gets OnClose with
// ErrServerClosed after a best-effort flush of its queued output), runs the
// functions already posted, and waits for every loop goroutine to exit.
// Loop.Post after Close drops the function. Close is safe to call more than
// once and from any goroutine except a loop's own.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		for _, l := range s.loops {
			l.stop()
		}
		s.wg.Wait()
		s.stopNudger()
	})
	s.wg.Wait()
	return nil
}

// Stats returns the server's counters, summed over its loops.
func (s *Server) Stats() Stats {
	st := Stats{Open: s.open.Load(), ReserveOpen: s.reserved.Load(), Nudges: s.nudged.Load(), Queued: s.queued.Load(),
		QueuedLimit: int64(max(s.cfg.MaxOutboundTotal, 0))}
	for _, l := range s.loops {
		l.stats.addTo(&st)
	}
	return st
}
