package bench

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pocketstore/pocket/perf/resp"
	"github.com/pocketstore/pocket/wire"
)

// fakeServer is a tiny in-memory store on 127.0.0.1:0, a goroutine per
// connection, speaking RESP or our wire protocol, so the generator and the
// drivers can be tested end to end without a real server. It stops when
// the test ends.
type fakeServer struct {
	ln       net.Listener
	mu       sync.Mutex
	data     map[string][]byte
	requests atomic.Int64
	// corrupt, when set, makes every get answer one byte short.
	corrupt atomic.Bool
	// stall, when set, makes the server read requests and never answer.
	stall atomic.Bool
	wg    sync.WaitGroup
	conns sync.Map
}

func startFake(t *testing.T, serve func(*fakeServer, net.Conn)) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{ln: ln, data: map[string][]byte{}}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Store(c, true)
			s.wg.Go(func() { defer c.Close(); serve(s, c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		s.conns.Range(func(c, _ any) bool { c.(net.Conn).Close(); return true })
		s.wg.Wait()
	})
	return s
}

func (s *fakeServer) addr() string { return s.ln.Addr().String() }

// del deletes key and reports whether it was there.
func (s *fakeServer) del(key []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.data[string(key)]
	delete(s.data, string(key))
	return ok
}

// stored is the number of keys the server holds.
func (s *fakeServer) stored() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.data)
}

func (s *fakeServer) put(key, value []byte) {
	s.mu.Lock()
	s.data[string(key)] = append([]byte(nil), value...)
	s.mu.Unlock()
}

// get returns the stored value, shortened by one byte when corrupt is set.
func (s *fakeServer) get(key []byte) ([]byte, bool) {
	s.mu.Lock()
	v, ok := s.data[string(key)]
	s.mu.Unlock()
	if ok && s.corrupt.Load() && len(v) > 0 {
		v = v[:len(v)-1]
	}
	return v, ok
}

// serveRESP answers GET and SET like Redis.
func serveRESP(s *fakeServer, c net.Conn) {
	r := resp.NewReader(c, 64<<10, 64<<20)
	w := bufio.NewWriterSize(c, 64<<10)
	var args [][]byte
	var out []byte
	for {
		var err error
		if args, err = r.ReadCommand(args); err != nil {
			return
		}
		s.requests.Add(1)
		if s.stall.Load() {
			continue
		}
		out = out[:0]
		switch {
		case string(args[0]) == "SET" && len(args) == 3:
			s.put(args[1], args[2])
			out = resp.AppendReply(out, resp.Reply{Kind: resp.SimpleString, Data: []byte("OK")})
		case string(args[0]) == "DEL" && len(args) == 2:
			n := int64(0)
			if s.del(args[1]) {
				n = 1
			}
			out = resp.AppendReply(out, resp.Reply{Kind: resp.Integer, Int: n})
		case string(args[0]) == "GET" && len(args) == 2:
			if v, ok := s.get(args[1]); ok {
				out = resp.AppendReply(out, resp.Reply{Kind: resp.Bulk, Data: v})
			} else {
				out = resp.AppendReply(out, resp.Reply{Kind: resp.Null})
			}
		default:
			out = resp.AppendReply(out, resp.Reply{Kind: resp.Error, Data: []byte("ERR unknown command")})
		}
		w.Write(out)
		if r.Buffered() == 0 { // answer a whole pipeline in one write
			if w.Flush() != nil {
				return
			}
		}
	}
}

// serveWire answers put and get frames of our wire protocol, keyed by job
// and key, with empty metadata on success.
func serveWire(s *fakeServer, c net.Conn) {
	lim := wire.DefaultLimits()
	br := bufio.NewReaderSize(c, 64<<10)
	bw := bufio.NewWriterSize(c, 64<<10)
	var hdr [wire.HeaderLen]byte
	var meta, payload []byte
	var req wire.Request
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		h, err := wire.ParseHeader(hdr[:], &lim)
		if err != nil {
			return
		}
		meta = grow(meta, int(h.MetaLen))
		payload = grow(payload, int(h.PayloadLen))
		if _, err := io.ReadFull(br, meta); err != nil {
			return
		}
		if _, err := io.ReadFull(br, payload); err != nil {
			return
		}
		if err := wire.DecodeRequest(meta, &lim, &req); err != nil {
			return
		}
		s.requests.Add(1)
		if s.stall.Load() {
			continue
		}
		key := append(append([]byte(nil), req.Job...), append([]byte{0}, req.Key...)...)
		reply := wire.Header{Op: h.Op.Reply(), ID: h.ID}
		var body []byte
		switch h.Op {
		case wire.OpPut:
			s.put(key, payload)
		case wire.OpDelete:
			if !s.del(key) {
				reply.Code = wire.CodeNotFound
			}
		case wire.OpGet:
			v, ok := s.get(key)
			if !ok {
				reply.Code = wire.CodeNotFound
			}
			body = v
		default:
			reply.Code = wire.CodeUnknownOp
		}
		reply.PayloadLen = uint32(len(body))
		wire.PutHeader(hdr[:], &reply)
		bw.Write(hdr[:])
		bw.Write(body)
		if br.Buffered() == 0 {
			if bw.Flush() != nil {
				return
			}
		}
	}
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// nullConn is a Conn that answers every request at once and allocates
// nothing, for measuring the generator's own cost.
type nullConn struct {
	outstanding int
	closed      atomic.Bool
}

var errNullClosed = errors.New("nullConn closed")

func (c *nullConn) SendGet([]byte) error      { c.outstanding++; return nil }
func (c *nullConn) SendPut(_, _ []byte) error { c.outstanding++; return nil }
func (c *nullConn) Flush() error              { return nil }
func (c *nullConn) Close() error              { c.closed.Store(true); return nil }
func (c *nullConn) Recv() error {
	if c.closed.Load() {
		return errNullClosed
	}
	c.outstanding--
	return nil
}
