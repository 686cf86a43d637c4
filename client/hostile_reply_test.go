package client

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// fakeNode serves each connection of a loopback listener with serve.
func fakeNode(t *testing.T, serve func(nc net.Conn, br *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				serve(nc, bufio.NewReader(nc))
			}()
		}
	}()
	return ln.Addr().String()
}

// readRequest reads one request frame and returns its header.
func readRequest(br *bufio.Reader) (wire.Header, error) {
	h, _, err := readRequestMeta(br)
	return h, err
}

// readRequestMeta reads one request frame and returns its header and
// metadata (the payload is discarded).
func readRequestMeta(br *bufio.Reader) (wire.Header, []byte, error) {
	var hb [wire.HeaderLen]byte
	if _, err := io.ReadFull(br, hb[:]); err != nil {
		return wire.Header{}, nil, err
	}
	lim := wire.DefaultLimits()
	h, err := wire.ParseHeader(hb[:], &lim)
	if err != nil {
		return h, nil, err
	}
	meta := make([]byte, h.MetaLen)
	if _, err := io.ReadFull(br, meta); err != nil {
		return h, nil, err
	}
	_, err = br.Discard(int(h.PayloadLen))
	return h, meta, err
}

// TestReplyOfAnotherOpFailsTheConn: a node whose reply carries the
// request's id but another operation's reply (a put's, with a payload,
// for a get) is out of step: the connection fails, malformed, rather than take
// that payload for the value. On the code before, the get returned "xyz".
func TestReplyOfAnotherOpFailsTheConn(t *testing.T) {
	addr := fakeNode(t, func(nc net.Conn, br *bufio.Reader) {
		h, err := readRequest(br)
		if err != nil {
			return
		}
		b := make([]byte, wire.HeaderLen)
		wire.PutHeader(b, &wire.Header{Op: wire.OpPut.Reply(), ID: h.ID, PayloadLen: 3})
		nc.Write(append(b, "xyz"...))
		io.Copy(io.Discard, br)
	})
	c := New(Options{})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.Do(ctx, addr, wire.OpGet, 0, &wire.Request{Job: []byte("j"), Key: []byte("k")}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "malformed frame: put-reply to request") {
		t.Fatalf("get answered by a put's reply: payload %q, err %v; want the connection failed, malformed", r.Payload, err)
	}
}

// TestReplyContentErrorsNameTheNode: a reply whose metadata is no
// Response flatbuffer, or whose code no version of the protocol has,
// fails the call naming the node that sent it. Before, the errors read
// "wire: malformed frame: Response: ..." and "wire: code 99" alone.
func TestReplyContentErrorsNameTheNode(t *testing.T) {
	for _, tc := range []struct {
		name string
		code wire.Code
		meta []byte
		want string
	}{
		{"corrupt metadata", wire.CodeOK, []byte{0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4}, "malformed frame: node 127.0.0.1:"},
		{"unknown code", 99, nil, "answered request 1, a get, with unknown code 99"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := fakeNode(t, func(nc net.Conn, br *bufio.Reader) {
				h, err := readRequest(br)
				if err != nil {
					return
				}
				b := make([]byte, wire.HeaderLen)
				wire.PutHeader(b, &wire.Header{Op: wire.OpGet.Reply(), ID: h.ID, Code: tc.code, MetaLen: uint32(len(tc.meta))})
				nc.Write(append(b, tc.meta...))
				io.Copy(io.Discard, br)
			})
			c := New(Options{})
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := c.Do(ctx, addr, wire.OpGet, 0, &wire.Request{Job: []byte("j"), Key: []byte("k")}, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), addr) {
				t.Fatalf("err %v; want it to say %q and name %s", err, tc.want, addr)
			}
		})
	}
}

// TestClaimedPayloadIsNotAllocatedAhead: a node whose get reply claims the
// largest payload (wire.DefaultMaxPayload, 64 MiB) and sends 1 MiB of it
// costs the client a few MiB, not what it claimed; a payload larger than
// eagerPayload that does come whole reads back intact. Before, each such
// reply allocated all it claimed before any byte came.
func TestClaimedPayloadIsNotAllocatedAhead(t *testing.T) {
	reply := func(payload []byte, claim int) func(nc net.Conn, br *bufio.Reader) {
		return func(nc net.Conn, br *bufio.Reader) {
			h, err := readRequest(br)
			if err != nil {
				return
			}
			b := make([]byte, wire.HeaderLen)
			wire.PutHeader(b, &wire.Header{Op: wire.OpGet.Reply(), ID: h.ID, PayloadLen: uint32(claim)})
			nc.Write(append(b, payload...))
			io.Copy(io.Discard, br) // and nothing more
		}
	}
	part := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	stalls := fakeNode(t, reply(part, wire.DefaultMaxPayload))
	full := bytes.Repeat([]byte("fedcba9876543210"), 6<<16) // 6 MiB
	whole := fakeNode(t, reply(full, len(full)))
	req := &wire.Request{Job: []byte("j"), Key: []byte("k")}

	c := New(Options{})
	defer c.Close()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	_, err := c.Do(ctx, stalls, wire.OpGet, 0, req, nil, nil)
	cancel()
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("a reply that never came whole was answered")
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Fatalf("a reply claiming %d MiB that sent 1 MiB made the client allocate %d MiB", wire.DefaultMaxPayload>>20, grew>>20)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := c.Do(ctx, whole, wire.OpGet, 0, req, nil, nil)
	if err != nil || !bytes.Equal(r.Payload, full) {
		t.Fatalf("a 6 MiB payload read back %d bytes (equal %v), %v", len(r.Payload), bytes.Equal(r.Payload, full), err)
	}
}
