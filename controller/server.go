package controller

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/pocketstore/pocket/wire"
)

// idleTimeout closes a control connection that sends nothing for this long.
// Nodes heartbeat every second; clients reconnect when they need to.
const idleTimeout = 5 * time.Minute

// server is the network side: listeners, connections and goroutines.
type server struct {
	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup

	mu    sync.Mutex // guards lns, conns
	lns   []net.Listener
	conns map[net.Conn]struct{}
}

func (s *server) init() {
	s.done = make(chan struct{})
	s.conns = map[net.Conn]struct{}{}
}

func (s *server) goroutine(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// ErrClosed is returned by Serve after Close.
var ErrClosed = errors.New("controller: closed")

// Serve accepts control connections on ln until Close. It returns
// ErrClosed after Close, or the listener's error.
func (c *Controller) Serve(ln net.Listener) error {
	s := &c.srv
	s.mu.Lock()
	select {
	case <-s.done:
		s.mu.Unlock()
		ln.Close()
		return ErrClosed
	default:
	}
	s.lns = append(s.lns, ln)
	s.mu.Unlock()
	for {
		conn, err := ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return ErrClosed
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("controller: accept: %w", err)
		}
		if !s.track(conn, c.cfg.MaxConns) {
			conn.Close()
			continue
		}
		s.goroutine(func() { c.serveConn(conn) })
	}
}

// Listen starts serving on addr (host:port; port 0 picks one) in the
// background and returns the bound address.
func (c *Controller) Listen(addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	c.srv.goroutine(func() {
		if err := c.Serve(ln); err != nil && !errors.Is(err, ErrClosed) {
			c.cfg.Logf("controller: %v", err)
		}
	})
	return ln.Addr(), nil
}

// track registers a connection unless the server is closed or full.
func (s *server) track(conn net.Conn, limit int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.done:
		return false
	default:
	}
	if len(s.conns) >= limit {
		return false
	}
	s.conns[conn] = struct{}{}
	return true
}

func (s *server) untrack(conn net.Conn) {
	s.mu.Lock()
	delete(s.conns, conn)
	s.mu.Unlock()
	conn.Close()
}

// Close stops the listeners, closes every connection and waits for the
// server's goroutines to end.
func (c *Controller) Close() error {
	s := &c.srv
	s.closeOnce.Do(func() {
		s.mu.Lock()
		close(s.done)
		for _, ln := range s.lns {
			ln.Close()
		}
		for conn := range s.conns {
			conn.Close()
		}
		s.mu.Unlock()
	})
	s.wg.Wait()
	return nil
}

// serveConn answers requests on one connection in order until it fails,
// goes idle or the server closes. A frame whose header is bad ends the
// connection after an error reply (the stream cannot be resynchronized);
// a bad table inside a good frame gets an error reply and the connection
// goes on.
func (c *Controller) serveConn(conn net.Conn) {
	defer c.srv.untrack(conn)
	r := bufio.NewReader(conn)
	lim := wire.ControlLimits()
	b := flatbuffers.NewBuilder(1024)
	var buf, out []byte
	for {
		if err := conn.SetReadDeadline(time.Now().Add(idleTimeout)); err != nil {
			return
		}
		h, meta, err := wire.ReadControlFrame(r, &lim, buf)
		if err != nil {
			var we *wire.Error
			if errors.As(err, &we) {
				out = wire.AppendControlFrame(out[:0], h.Op.Reply(), h.ID, we.Code, wire.NewEncoder().ErrorResponse(err))
				conn.Write(out)
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				c.cfg.Logf("controller: %s: %v", conn.RemoteAddr(), err)
			}
			return
		}
		buf = meta[:0]
		reply, err := c.handle(h.Op, meta, b)
		code := wire.CodeOK
		if err != nil {
			code = wire.CodeOf(err)
			reply = wire.NewEncoder().ErrorResponse(err)
		}
		out = wire.AppendControlFrame(out[:0], h.Op.Reply(), h.ID, code, reply)
		if err := conn.SetWriteDeadline(time.Now().Add(10 * time.Second)); err != nil {
			return
		}
		if _, err := conn.Write(out); err != nil {
			return
		}
	}
}

// handle decodes one request, runs it and encodes the reply table in b.
func (c *Controller) handle(op wire.Op, meta []byte, b *flatbuffers.Builder) ([]byte, error) {
	var reply wire.ControlMessage
	var err error
	switch op {
	case wire.OpRegisterNode:
		var m wire.NodeRegister
		if err = m.Decode(meta); err == nil {
			reply, err = c.RegisterNode(&m)
		}
	case wire.OpHeartbeat:
		var m wire.Heartbeat
		if err = m.Decode(meta); err == nil {
			reply, err = c.Heartbeat(&m)
		}
	case wire.OpRegisterJob:
		var m wire.JobRegister
		if err = m.Decode(meta); err == nil {
			reply, err = c.RegisterJob(m.Name, m.Hints)
		}
	case wire.OpDeregisterJob:
		var m wire.JobRef
		if err = m.Decode(meta); err == nil {
			ctx, cancel := c.closingContext()
			reply, err = c.DeregisterJob(ctx, m.Job, m.Token)
			cancel()
		}
	case wire.OpGetMap:
		var m wire.JobRef
		if err = m.Decode(meta); err == nil {
			reply, err = c.GetMap(m.Job, m.Token)
		}
	case wire.OpStatus:
		reply = c.Status()
	case wire.OpDrainNode:
		var m wire.DrainNode
		if err = m.Decode(meta); err == nil {
			reply, err = c.DrainRequest(&m)
		}
	default:
		err = wire.Errorf(wire.CodeUnknownOp, "controller does not serve %s", op)
	}
	if err != nil {
		return nil, err
	}
	return reply.Encode(b), nil
}

// closingContext is cancelled when the controller closes, so drop-job
// exchanges do not hold up Close for their whole timeout.
func (c *Controller) closingContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-c.srv.done:
		case <-ctx.Done():
		}
		cancel()
	}()
	return ctx, cancel
}
