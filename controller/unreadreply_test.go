package controller

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/pocketstore/pocket/internal/pki"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// unreadConn opens a TLS connection of the client certificate in dir
// with a small receive buffer and sends get-map requests (a bad token:
// each answered with a short error), reading none of the replies, until
// its writes block: the controller's reply write blocks, and it reads no
// more.
func unreadConn(t *testing.T, dir, addr string) net.Conn {
	t.Helper()
	cfg, err := pki.ClientConfig(dir, "client")
	if err != nil {
		t.Fatal(err)
	}
	d := net.Dialer{Timeout: 3 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1024) })
	}}
	conn, err := tls.DialWithDialer(&d, "tcp", addr, cfg)
	if err != nil {
		return nil
	}
	b := flatbuffers.NewBuilder(256)
	meta := (&wire.JobRef{Job: "nobody-1", Token: make([]byte, 49)}).Encode(b)
	var batch []byte
	for i := range 64 {
		batch = wire.AppendControlFrame(batch, wire.OpGetMap, uint64(i+1), 0, meta)
	}
	for {
		conn.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := conn.Write(batch); err != nil {
			return conn // blocked: the controller no longer reads
		}
	}
}

// TestUnreadRepliesHoldNoSlots (hostile trial): a connection whose peer
// sends requests and reads none of the replies has the controller blocked
// in a reply write (up to Config.WriteTimeout, 10 s). It counted as busy all
// that time, and a busy connection is never evicted: a tenant holding
// MaxConns of them (1,024 in 2.5 s against `pocket controller`) had every
// other client refused "none idle" for the next 9 s, again after each
// burst. A reply its peer has not taken for evictMinIdle now counts as
// idle, and a new client takes its place.
func TestUnreadRepliesHoldNoSlots(t *testing.T) {
	dir := testPKI(t)
	srv, err := pki.ServerConfig(dir, "controller")
	if err != nil {
		t.Fatal(err)
	}
	const maxConns = 32
	// The write timeout is long here: with the default 10 s, on a loaded
	// machine the first connections' writes timed out (and their slots
	// freed) before the last ones' blocked, and the test never saw all
	// of them held at once (CI).
	c := newTest(t, Config{TLS: srv, MaxConns: maxConns, MaxConnsPerPeer: -1, DeadAfter: time.Hour, WriteTimeout: 10 * time.Minute})
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	a, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := a.String()
	var mu sync.Mutex
	var held []net.Conn
	var wg sync.WaitGroup
	for range maxConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if conn := unreadConn(t, dir, addr); conn != nil {
				mu.Lock()
				held = append(held, conn)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	defer func() {
		for _, conn := range held {
			conn.Close()
		}
	}()
	cfg, err := pki.ClientConfig(dir, "operator")
	if err != nil {
		t.Fatal(err)
	}
	// The controller first works through what was sent, for many
	// seconds on a loaded machine (CI: more than a minute); start once it
	// serves none of the tenant's connections any more: each is stuck in
	// a reply write. Then the slots must free within evictMinIdle; on the
	// code before this fix the first freed only when its write timed out.
	if !stuckInWrites(c, len(held), 4*time.Minute) {
		t.Fatalf("the controller still serves the %d connections after 4 minutes", len(held))
	}
	start := time.Now()
	deadline := start.Add(5 * time.Second)
	refused := 0
	var last error
	for {
		mc := metaclient.New(addr, metaclient.Options{TLS: cfg, Logger: quietLog, RetryFor: -1})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := mc.RegisterJob(ctx, "victim", wire.JobHints{PeakMbps: 100})
		cancel()
		mc.Close()
		if err == nil {
			t.Logf("another client registered %v after the attack began (%d refusals before)", time.Since(start).Round(time.Millisecond), refused)
			return
		}
		refused, last = refused+1, err
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("another client's registrations refused %d times over %v while a tenant holds %d connections with replies unread: %v",
		refused, time.Since(start).Round(time.Millisecond), len(held), last)
}

// stuckInWrites waits, up to limit, until n of c's connections other than
// nodes' have had no request start or end for 500 ms: its reply writes
// block, and it reads no more from them.
func stuckInWrites(c *Controller, n int, limit time.Duration) bool {
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		stuck := 0
		c.srv.mu.Lock()
		for _, ci := range c.srv.conns {
			if !ci.node && time.Since(ci.last) > 500*time.Millisecond {
				stuck++
			}
		}
		c.srv.mu.Unlock()
		if stuck >= n {
			return true
		}
	}
	return false
}
