package dataplane_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/nvme"
	"github.com/pocketstore/pocket/wire"
)

// malformed is a header the node refuses (bad magic): it answers it and
// closes the connection.
var malformed = bytes.Repeat([]byte{0xff}, wire.HeaderLen)

// TestNodeCloseWaitsForAPutUnderWay: an NVMe put committed on a worker
// (the device slowed to 1 s a commit), then a malformed frame on the same
// connection. The node closes the connection once the put is stored and
// answered: a get right after the client sees the close finds the value.
// Before, the node closed at once and the put was published a second
// later, after whatever the client did next.
func TestNodeCloseWaitsForAPutUnderWay(t *testing.T) {
	f := dataplane.NewFaulty(newNVMe(t, 64<<20, nvme.Options{}, dataplane.NVMeOptions{}))
	f.SetHook(func(op dataplane.FaultOp, _, key []byte) error {
		if op == dataplane.FaultCommit && string(key) == "a" {
			time.Sleep(time.Second)
		}
		return nil
	})
	n, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", NVMe: f, Net: netio.Config{Loops: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	meta := wire.NewEncoder().Request(&wire.Request{Job: []byte("j"), Key: []byte("a")})
	h := wire.Header{Op: wire.OpPut, Flags: wire.FlagTierNVMe, ID: 1, MetaLen: uint32(len(meta)), PayloadLen: 5}
	out := append(append(wire.AppendHeader(nil, &h), meta...), "value"...)
	got := untilClosed(t, n, append(out, malformed...), false)
	c := client.New(client.Options{})
	defer c.Close()
	r, err := c.Do(context.Background(), n.Addr().String(), wire.OpGet, wire.FlagTierNVMe,
		&wire.Request{Job: []byte("j"), Key: []byte("a")}, nil, nil)
	if err != nil || !bytes.Equal(r.Payload, []byte("value")) {
		t.Fatalf("get right after the node's close: %q, %v; want the put sent before it", r.Payload, err)
	}
	if !hasReply(got, 1, wire.CodeOK) {
		t.Fatalf("the put's reply did not come before the close (%d bytes came)", len(got))
	}
}

// TestNodeCloseStopsAStreamedGet: a get of a 4 MiB NVMe value (streamed,
// its reply promised until the header goes out) followed by a malformed
// frame: the node stops the stream and closes without waiting for it.
func TestNodeCloseStopsAStreamedGet(t *testing.T) {
	n, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0",
		NVMe: newNVMe(t, 64<<20, nvme.Options{}, dataplane.NVMeOptions{}), Net: netio.Config{Loops: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	c := client.New(client.Options{})
	defer c.Close()
	req := wire.Request{Job: []byte("j"), Key: []byte("big")}
	if _, err := c.Do(context.Background(), n.Addr().String(), wire.OpPut, wire.FlagTierNVMe, &req, make([]byte, 4<<20), nil); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		meta := wire.NewEncoder().Request(&req)
		h := wire.Header{Op: wire.OpGet, Flags: wire.FlagTierNVMe, ID: 1, MetaLen: uint32(len(meta))}
		untilClosed(t, n, append(append(wire.AppendHeader(nil, &h), meta...), malformed...), false)
	}
	if _, err := c.Do(context.Background(), n.Addr().String(), wire.OpGet, wire.FlagTierNVMe, &req, nil, nil); err != nil {
		t.Fatalf("a get after the closes: %v", err)
	}
}

// hasReply reports whether the replies in b include one to id with code.
func hasReply(b []byte, id uint64, code wire.Code) bool {
	lim := wire.DefaultLimits()
	for len(b) >= wire.HeaderLen {
		h, err := wire.ParseHeader(b[:wire.HeaderLen], &lim)
		if err != nil {
			return false
		}
		if h.ID == id && h.Code == code {
			return true
		}
		b = b[min(len(b), wire.HeaderLen+int(h.MetaLen)+int(h.PayloadLen)):]
	}
	return false
}
