package dataplane_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/nvme"
	"github.com/pocketstore/pocket/wire"
)

// TestHalfClosedPutsAreAnswered: two NVMe puts pipelined in one write, so
// the first is committed on a worker (the device slowed to 200 ms a
// commit), then the client shuts its writing side: both replies arrive
// before the node closes, and the values are stored. Before, the node
// closed the connection at the end of its input and dropped the replies
// while the puts were published after the close (a review of the Python
// client, whose fence relies on that reply).
func TestHalfClosedPutsAreAnswered(t *testing.T) {
	f := dataplane.NewFaulty(newNVMe(t, 64<<20, nvme.Options{}, dataplane.NVMeOptions{}))
	f.SetHook(func(op dataplane.FaultOp, _, _ []byte) error {
		if op == dataplane.FaultCommit {
			time.Sleep(200 * time.Millisecond)
		}
		return nil
	})
	n, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", NVMe: f, Net: netio.Config{Loops: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var out []byte
	for i, key := range []string{"a", "b"} {
		req := wire.Request{Job: []byte("j"), Key: []byte(key)}
		meta := wire.NewEncoder().Request(&req)
		h := wire.Header{Op: wire.OpPut, Flags: wire.FlagTierNVMe, ID: uint64(i + 1), MetaLen: uint32(len(meta)), PayloadLen: 5}
		out = append(append(wire.AppendHeader(out, &h), meta...), "value"...)
	}
	got := halfClosed(t, n, out)
	lim := wire.DefaultLimits()
	for i := range 2 {
		if len(got) < wire.HeaderLen {
			t.Fatalf("reply %d of 2 missing: the node closed after %d bytes", i+1, len(got))
		}
		h, err := wire.ParseHeader(got[:wire.HeaderLen], &lim)
		if err != nil || h.Code != wire.CodeOK || h.Op != wire.OpPut.Reply() {
			t.Fatalf("reply %d: %+v, %v", i+1, h, err)
		}
		got = got[wire.HeaderLen+int(h.MetaLen)+int(h.PayloadLen):]
	}
	c := client.New(client.Options{})
	defer c.Close()
	for _, key := range []string{"a", "b"} {
		r, err := c.Do(context.Background(), n.Addr().String(), wire.OpGet, wire.FlagTierNVMe,
			&wire.Request{Job: []byte("j"), Key: []byte(key)}, nil, nil)
		if err != nil || !bytes.Equal(r.Payload, []byte("value")) {
			t.Fatalf("get %s: %q, %v", key, r.Payload, err)
		}
	}
}

// TestHalfClosedStreamedGetIsWhole: a get of a 4 MiB NVMe value (streamed
// chunk by chunk as it is read) whose client shuts its writing side at
// once gets the whole value before the node closes. Before, the close at
// the end of input cut the stream.
func TestHalfClosedStreamedGetIsWhole(t *testing.T) {
	n, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0",
		NVMe: newNVMe(t, 64<<20, nvme.Options{}, dataplane.NVMeOptions{}), Net: netio.Config{Loops: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	val := bytes.Repeat([]byte("0123456789abcdef"), 4<<20/16)
	c := client.New(client.Options{})
	defer c.Close()
	req := wire.Request{Job: []byte("j"), Key: []byte("big")}
	if _, err := c.Do(context.Background(), n.Addr().String(), wire.OpPut, wire.FlagTierNVMe, &req, val, nil); err != nil {
		t.Fatal(err)
	}
	meta := wire.NewEncoder().Request(&req)
	h := wire.Header{Op: wire.OpGet, Flags: wire.FlagTierNVMe, ID: 1, MetaLen: uint32(len(meta))}
	got := halfClosed(t, n, append(wire.AppendHeader(nil, &h), meta...))
	lim := wire.DefaultLimits()
	if len(got) < wire.HeaderLen {
		t.Fatalf("the node closed after %d bytes", len(got))
	}
	rh, err := wire.ParseHeader(got[:wire.HeaderLen], &lim)
	if err != nil || rh.Code != wire.CodeOK {
		t.Fatalf("reply %+v, %v", rh, err)
	}
	body := got[wire.HeaderLen+int(rh.MetaLen):]
	if int(rh.PayloadLen) != len(val) || !bytes.Equal(body, val) {
		t.Fatalf("got %d of the value's %d bytes (header says %d)", len(body), len(val), rh.PayloadLen)
	}
}

// TestHalfCloseWithAPutCutShort: a put committed on a worker (the device
// slowed to 1.5 s a commit), then a put announcing 1 MiB that sends 10
// bytes, then the end of input. The cut put is dropped at once; the first
// is answered, and stored once the node has closed the connection (what a
// client's fence relies on). On d757ab0 the cut put's sink stayed open,
// and the sweep closed the connection for its pace (SinkGrace, 100 ms
// here) under the first put's commit: no reply, and a get right after the
// close found nothing (a review).
func TestHalfCloseWithAPutCutShort(t *testing.T) {
	f := dataplane.NewFaulty(newNVMe(t, 64<<20, nvme.Options{}, dataplane.NVMeOptions{}))
	f.SetHook(func(op dataplane.FaultOp, _, key []byte) error {
		if op == dataplane.FaultCommit && string(key) == "a" {
			time.Sleep(1500 * time.Millisecond)
		}
		return nil
	})
	n, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", NVMe: f,
		Net: netio.Config{Loops: 1, SinkGrace: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	put := func(id uint64, key string, size int, payload []byte) []byte {
		meta := wire.NewEncoder().Request(&wire.Request{Job: []byte("j"), Key: []byte(key)})
		h := wire.Header{Op: wire.OpPut, Flags: wire.FlagTierNVMe, ID: id, MetaLen: uint32(len(meta)), PayloadLen: uint32(size)}
		return append(append(wire.AppendHeader(nil, &h), meta...), payload...)
	}
	got := halfClosed(t, n, append(put(1, "a", 5, []byte("value")), put(2, "b", 1<<20, make([]byte, 10))...))
	lim := wire.DefaultLimits()
	if len(got) < wire.HeaderLen {
		t.Fatalf("the node closed after %d bytes, without the whole put's reply", len(got))
	}
	if h, err := wire.ParseHeader(got[:wire.HeaderLen], &lim); err != nil || h.ID != 1 || h.Code != wire.CodeOK {
		t.Fatalf("reply %+v, %v; want put 1's, ok", h, err)
	}
	c := client.New(client.Options{})
	defer c.Close()
	for key, want := range map[string]error{"a": nil, "b": wire.ErrNotFound} {
		_, err := c.Do(context.Background(), n.Addr().String(), wire.OpGet, wire.FlagTierNVMe,
			&wire.Request{Job: []byte("j"), Key: []byte(key)}, nil, nil)
		if !errors.Is(err, want) && !(want == nil && err == nil) {
			t.Fatalf("get %s after the close: %v, want %v", key, err, want)
		}
	}
}

// halfClosed writes out to a new connection to n, shuts its writing side
// and returns what the node sends before it closes.
func halfClosed(t *testing.T, n *dataplane.Node, out []byte) []byte {
	t.Helper()
	return untilClosed(t, n, out, true)
}

// untilClosed writes out to a new connection to n, shuts its writing side
// if shut says so, and returns what the node sends before it closes.
func untilClosed(t *testing.T, n *dataplane.Node, out []byte, shut bool) []byte {
	t.Helper()
	nc, err := net.Dial("tcp", n.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Write(out); err != nil {
		t.Fatal(err)
	}
	if shut {
		nc.(*net.TCPConn).CloseWrite()
	}
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(nc)
	if err != nil {
		t.Fatalf("after %d bytes: %v (want the node's close)", len(got), err)
	}
	return got
}
