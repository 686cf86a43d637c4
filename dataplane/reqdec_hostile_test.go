package dataplane

import (
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/wire"
)

// hostileMeta is a hand-laid Request of job "j" and key "k" (52 bytes):
// root 24, vtable at 4 (ids 0 and 1, table size 12), job's uoffset at 28
// to the vector at 36, key's at 32 to the vector at 44. fix patches it.
func hostileMeta(fix func(m []byte)) []byte {
	m := make([]byte, 52)
	le := binary.LittleEndian
	le.PutUint32(m[0:], 24)
	le.PutUint16(m[4:], 8)
	le.PutUint16(m[6:], 12)
	le.PutUint16(m[8:], 4)
	le.PutUint16(m[10:], 8)
	le.PutUint32(m[24:], 20)
	le.PutUint32(m[28:], 8)
	le.PutUint32(m[32:], 12)
	le.PutUint32(m[36:], 1)
	m[40] = 'j'
	le.PutUint32(m[44:], 1)
	m[48] = 'k'
	if fix != nil {
		fix(m)
	}
	return m
}

// hostileReply reads one reply from r (client.NewConn over the test's raw
// connection) and its error message ("" for a success).
func hostileReply(t *testing.T, r *client.Conn) (client.Response, string) {
	t.Helper()
	resp, err := r.Recv()
	if err != nil {
		t.Fatalf("reading a reply: %v", err)
	}
	var we *wire.Error
	if errors.As(resp.Err(), &we) {
		return resp, we.Msg
	}
	return resp, ""
}

// TestHostileNodeMalformedRequestMeta sends, pipelined on one connection,
// request frames whose metadata is every kind of hostile Request (short,
// offsets near 2^32, soffsets of ±2^31, huge table and vector sizes), some
// with payloads: each gets a CodeMalformed reply naming the fault, in
// order, the connection keeps serving (a well-formed get after them is
// answered), and another connection is served meanwhile.
func TestHostileNodeMalformedRequestMeta(t *testing.T) {
	n := startNode(t, 64<<20, nil)
	le := binary.LittleEndian
	type frame struct {
		op      wire.Op
		meta    []byte
		payload []byte
		msg     string // the reply's message; "" for a well-formed request
		code    wire.Code
	}
	frames := []frame{
		{op: wire.OpGet, meta: []byte{7}, msg: "Request: flatbuffer of 1 bytes"},
		{op: wire.OpGet, meta: []byte{0xff, 0xff, 0xff}, msg: "Request: flatbuffer of 3 bytes"},
		{op: wire.OpGet, meta: hostileMeta(func(m []byte) { le.PutUint32(m, 0xffffffff) }), msg: "Request: table out of bounds"},
		{op: wire.OpGet, meta: hostileMeta(func(m []byte) { le.PutUint32(m[24:], 0x80000000) }), msg: "Request: vtable out of bounds"},
		{op: wire.OpGet, meta: hostileMeta(func(m []byte) { le.PutUint32(m[24:], 0x7fffffff) }), msg: "Request: vtable out of bounds"},
		{op: wire.OpGet, meta: hostileMeta(func(m []byte) { le.PutUint16(m[6:], 0xffff) }), msg: "Request: vtable size out of bounds"},
		{op: wire.OpGet, meta: hostileMeta(func(m []byte) { le.PutUint16(m[4:], 0xfffe) }), msg: "Request: vtable size out of bounds"},
		{op: wire.OpGet, meta: hostileMeta(func(m []byte) { le.PutUint16(m[10:], 0xffff) }), msg: "Request: field out of bounds"},
		{op: wire.OpGet, meta: hostileMeta(func(m []byte) { le.PutUint32(m[32:], 0xffffffff) }), msg: "Request: vector out of bounds"},
		{op: wire.OpGet, meta: hostileMeta(func(m []byte) { le.PutUint32(m[36:], 0xffffffff) }), msg: "Request: vector length out of bounds"},
		{op: wire.OpGet, meta: hostileMeta(func(m []byte) { le.PutUint32(m[44:], 4) }), msg: "Request: vector length out of bounds"},
		{op: wire.OpPut, meta: hostileMeta(func(m []byte) { le.PutUint32(m[28:], 0xfffffff8) }), payload: []byte("hello"), msg: "Request: vector out of bounds"},
		{op: wire.OpPing},
		{op: wire.OpGet, meta: hostileMeta(nil), code: wire.CodeNotFound},
	}
	nc, err := net.Dial("tcp", n.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	rd := client.NewConn(nc, client.ConnOptions{})
	var out []byte
	for i, f := range frames {
		out = wire.AppendHeader(out, &wire.Header{Op: f.op, ID: uint64(100 + i), MetaLen: uint32(len(f.meta)), PayloadLen: uint32(len(f.payload))})
		out = append(out, f.meta...)
		out = append(out, f.payload...)
	}
	if _, err := nc.Write(out); err != nil {
		t.Fatal(err)
	}
	for i, f := range frames {
		h, msg := hostileReply(t, rd)
		want := f.code
		if f.msg != "" {
			want = wire.CodeMalformed
		}
		if h.ID != uint64(100+i) || h.Op != f.op.Reply() || h.Code != want || msg != f.msg && f.msg != "" {
			t.Errorf("frame %d (%v, meta %x): reply id %d op %v code %v %q; want id %d code %v %q",
				i, f.op, f.meta, h.ID, h.Op, h.Code, msg, 100+i, want, f.msg)
		}
	}
	// Another connection is served, and the hostile one still is.
	c := dial(t, n, "j")
	if r := roundTrip(t, c, wire.OpPut, 0, &wire.Request{Job: []byte("j"), Key: []byte("k")}, []byte("v")); r.Code != 0 {
		t.Fatalf("put on another connection: %v", r.Err())
	}
	out = wire.AppendHeader(nil, &wire.Header{Op: wire.OpGet, ID: 1, MetaLen: 52})
	out = append(out, hostileMeta(nil)...)
	if _, err := nc.Write(out); err != nil {
		t.Fatal(err)
	}
	if h, msg := hostileReply(t, rd); h.Code != 0 || len(h.Payload) != 1 {
		t.Fatalf("get of k on the hostile connection after its bad frames: code %v %q, payload %d bytes", h.Code, msg, len(h.Payload))
	}
}

// TestHostileNodeMalformedMetaPayloadLater: a put whose metadata is refused
// and whose payload has not all arrived is answered once, its payload is
// skipped as it comes, and the next frame on the connection is served.
func TestHostileNodeMalformedMetaPayloadLater(t *testing.T) {
	n := startNode(t, 64<<20, nil)
	nc, err := net.Dial("tcp", n.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	rd := client.NewConn(nc, client.ConnOptions{})
	meta := hostileMeta(func(m []byte) { binary.LittleEndian.PutUint32(m[36:], 0xffffffff) })
	payload := []byte(strings.Repeat("p", 1<<16))
	out := wire.AppendHeader(nil, &wire.Header{Op: wire.OpPut, ID: 5, MetaLen: uint32(len(meta)), PayloadLen: uint32(len(payload))})
	out = append(out, meta...)
	if _, err := nc.Write(append(out, payload[:100]...)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	out = append(append([]byte(nil), payload[100:]...), wire.AppendHeader(nil, &wire.Header{Op: wire.OpPing, ID: 6})...)
	if _, err := nc.Write(out); err != nil {
		t.Fatal(err)
	}
	if h, msg := hostileReply(t, rd); h.ID != 5 || h.Code != wire.CodeMalformed || msg != "Request: vector length out of bounds" {
		t.Fatalf("bad put: reply id %d code %v %q", h.ID, h.Code, msg)
	}
	if h, msg := hostileReply(t, rd); h.ID != 6 || h.Code != 0 {
		t.Fatalf("ping after the bad put: reply id %d code %v %q", h.ID, h.Code, msg)
	}
	if u := n.cfg.DRAM.Usage().Used; u != 0 {
		t.Fatalf("the refused put left %d bytes stored", u)
	}
}

// TestHostileNodeMalformedMetaOnReserve: on a reserve connection (the node
// at its connection limit) an incarnation question with hostile metadata
// is answered CodeMalformed naming the fault, the reserve then closes that
// connection, and the node keeps serving its held connection and the
// reserve.
func TestHostileNodeMalformedMetaOnReserve(t *testing.T) {
	n, hold := fullNode(t)
	for _, tc := range []struct {
		meta []byte
		msg  string
	}{
		{[]byte{1, 2}, "Request: flatbuffer of 2 bytes"},
		{hostileMeta(func(m []byte) { binary.LittleEndian.PutUint32(m[24:], 0x80000000) }), "Request: vtable out of bounds"},
		{hostileMeta(func(m []byte) { binary.LittleEndian.PutUint32(m[44:], 0xffffffff) }), "Request: vector length out of bounds"},
	} {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}, Timeout: 5 * time.Second}
		nc, err := d.Dial("tcp", n.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		rd := client.NewConn(nc, client.ConnOptions{})
		out := wire.AppendHeader(nil, &wire.Header{Op: wire.OpIncarnation, ID: 3, MetaLen: uint32(len(tc.meta))})
		if _, err := nc.Write(append(out, tc.meta...)); err != nil {
			t.Fatal(err)
		}
		h, msg := hostileReply(t, rd)
		if h.ID != 3 || h.Code != wire.CodeMalformed || msg != tc.msg {
			t.Errorf("meta %x on the reserve: reply id %d code %v %q, want code %v %q", tc.meta, h.ID, h.Code, msg, wire.CodeMalformed, tc.msg)
		}
		if _, err := nc.Read(make([]byte, 1)); err == nil {
			t.Errorf("meta %x: the reserve connection stayed open after its one answer", tc.meta)
		}
		nc.Close()
	}
	if r := roundTrip(t, hold, wire.OpPing, 0, &wire.Request{}, nil); r.Code != 0 {
		t.Fatalf("the held connection after the reserve's bad frames: %v", r.Err())
	}
	if _, err := askOnce(n, "127.0.0.4", wire.OpPing, &wire.Request{}, nil); err != nil {
		t.Fatalf("a ping on the reserve after the bad frames: %v", err)
	}
}
