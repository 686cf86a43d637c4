// Package echo is the small-request limit of a machine: a server on the
// storage node's own event loop (package netio) that answers each request
// frame with a reply of the size the frame asks for and does nothing else
// (no dispatch, no index, no copy of a value), and its client codec.
// `pocket bench --echo-listen ADDR` serves it; `pocket bench --target
// echo://ADDR` drives it with the same generator, connections and pipeline
// depth as a node, so a node's small-request rate can be read as a share of
// what the loop and the kernel allow on the same cores.
//
// # Frames
//
// A request and a reply both start with an 8-byte header, little-endian:
//
//	offset 0  uint32  body: bytes that follow the header
//	offset 4  uint32  reply: the size of the whole reply, header included (requests);
//	                  0 (replies)
//
// The server skips a request's body unread (it may arrive over several
// reads) and answers with a header whose body is reply-8, followed by that
// many zero bytes. Replies leave in request order. body is at most MaxBody
// and reply between HeaderSize and MaxReply: anything else closes the
// connection with ErrFrame.
//
// The bench driver sends, for a GET, the key as the body and asks for a
// reply of HeaderSize+value; for a PUT, key and value as the body and a
// header-only reply: the same key and value bytes each way as a node's GET
// and PUT. Our own frame header and flatbuffer are larger than these 8
// bytes, so the limit errs on the echo server's side.
package echo

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/pocketstore/pocket/netio"
)

// Frame bounds.
const (
	HeaderSize = 8
	MaxBody    = 64 << 20
	MaxReply   = 64 << 20
)

// ErrFrame marks a request frame out of bounds.
var ErrFrame = errors.New("echo: bad frame")

// AppendHeader appends a frame header to dst.
func AppendHeader(dst []byte, body, reply uint32) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, body)
	return binary.LittleEndian.AppendUint32(dst, reply)
}

// ParseHeader reads a frame header from the first HeaderSize bytes of b.
func ParseHeader(b []byte) (body, reply uint32) {
	return binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:])
}

// copyLimit is the largest reply body written by copy; larger bodies go out
// by reference to the shared zero buffer, as a node sends large values.
const copyLimit = 16 << 10

// zeros is every reply's body. It is never written, so the loops may send
// it by reference (netio.Conn.WriteRef) without a Releaser.
var zeros = make([]byte, 1<<20)

// Server is a running echo server.
type Server struct{ srv *netio.Server }

// Listen serves the echo protocol on addr ("host:port"; port 0 picks one)
// with cfg's event loops (zero fields: netio's defaults, as a node has).
func Listen(addr string, cfg netio.Config) (*Server, error) {
	s, err := netio.Listen(addr, cfg, handler{})
	if err != nil {
		return nil, fmt.Errorf("echo: %w", err)
	}
	return &Server{srv: s}, nil
}

// Addr is the address the server listens on (host:port).
func (s *Server) Addr() string { return s.srv.Addr().String() }

// Close stops the server and waits for its loops.
func (s *Server) Close() error { return s.srv.Close() }

// handler answers frames. A connection's context is its *conn.
type handler struct{}

// conn is a connection's state: body bytes of the current request still
// to skip.
type conn struct{ skip int }

func (handler) OnOpen(c *netio.Conn)           { c.SetContext(&conn{}) }
func (handler) OnClose(c *netio.Conn, _ error) {}

func (handler) OnData(c *netio.Conn, in []byte) (int, error) {
	st := c.Context().(*conn)
	done := 0
	for {
		if st.skip > 0 {
			n := min(st.skip, len(in)-done)
			st.skip -= n
			done += n
			if st.skip > 0 {
				return done, nil
			}
		}
		if len(in)-done < HeaderSize {
			return done, nil
		}
		body, reply := ParseHeader(in[done:])
		if body > MaxBody || reply < HeaderSize || reply > MaxReply {
			return done, fmt.Errorf("%w: body %d, reply %d bytes (limits %d, %d-%d)",
				ErrFrame, body, reply, MaxBody, HeaderSize, MaxReply)
		}
		done += HeaderSize
		st.skip = int(body)
		answer(c, int(reply)-HeaderSize)
	}
}

// answer queues a reply with n body bytes.
func answer(c *netio.Conn, n int) {
	var hdr [HeaderSize]byte
	c.Write(AppendHeader(hdr[:0], uint32(n), 0))
	if n <= copyLimit {
		c.Write(zeros[:n])
		return
	}
	for n > 0 {
		k := min(n, len(zeros))
		c.WriteRef(zeros[:k], nil)
		n -= k
	}
}
