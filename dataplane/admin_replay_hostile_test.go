package dataplane

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/wire"
)

// captureFrame listens on loopback, takes one data-plane frame (header,
// metadata, payload) as an eavesdropper on the link would see it, and
// closes the connection without an answer. It returns the address and a
// channel that gets the frame.
func captureFrame(t *testing.T) (string, <-chan []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan []byte, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		hb := make([]byte, wire.HeaderLen)
		if _, err := io.ReadFull(conn, hb); err != nil {
			return
		}
		lim := wire.DefaultLimits()
		h, err := wire.ParseHeader(hb, &lim)
		if err != nil {
			return
		}
		rest := make([]byte, int(h.MetaLen)+int(h.PayloadLen))
		if _, err := io.ReadFull(conn, rest); err != nil {
			return
		}
		got <- append(hb, rest...)
	}()
	return ln.Addr().String(), got
}

// TestCapturedDropOrderDoesNotReplay: the controller's order to drop a
// job's data (wire.OpDropJob) carries the job's admin token,
// token.SignAdmin(secret, job): the same 49 bytes for every order about the
// job, to every node, for ever (no node address, no expiry, no nonce), in
// a frame whose header flags no MAC covers, over the data plane's plain
// TCP. Whoever sees one such order on one node's link (a deregistration's
// drop, or the drop a node that left the job's map gets when it returns)
// can replay it to any other node at any time: the node revokes the job
// and drops its values, and with FlagPrefix set in the header (which the
// controller never sends) the persist-after-job values too, which the
// README says stay read-only for the job's credential. Here the order
// captured on its way to one node, replayed verbatim and then with
// FlagPrefix to another node holding the job's values, destroys them all;
// a node should take only the orders the controller gave it.
func TestCapturedDropOrderDoesNotReplay(t *testing.T) {
	const job = "sort-17"
	tok := token.SignJob(jtSecret, []byte(job), token.Claims{Gen: 1})
	holder := tokenNode(t) // holds the job's values; no drop was ordered here
	if err := jobOp(t, holder, wire.OpPut, job, "tmp", tok, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := jobOp(t, holder, wire.OpPut, job, "kept", tok, 0, wire.FlagPersist); err != nil {
		t.Fatal(err)
	}

	// The controller's drop order to another node (controller.dropAll
	// sends client.DropJob), seen on that node's link.
	other, frames := captureFrame(t)
	cl := client.New(client.Options{ConnsPerNode: 1, DialTimeout: time.Second})
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cl.DropJob(ctx, other, job, token.SignAdmin(jtSecret, []byte(job))) // unanswered
	var order []byte
	select {
	case order = <-frames:
	case <-time.After(3 * time.Second):
		t.Fatal("no drop order captured")
	}
	lim := wire.DefaultLimits()
	h, err := wire.ParseHeader(order, &lim)
	if err != nil || h.Op != wire.OpDropJob || h.Flags&wire.FlagPrefix != 0 {
		t.Fatalf("captured frame: %+v %v", h, err)
	}

	// Replayed to the holder, as it was, then with FlagPrefix set.
	if rh, err := rawExchange(t, holder, order); err == nil && rh.Code == wire.CodeOK {
		t.Errorf("a drop order captured on its way to %s, replayed to %s, was taken", other, holder.Addr())
	}
	h.Flags |= wire.FlagPrefix
	forged := append(wire.AppendHeader(nil, &h), order[wire.HeaderLen:]...)
	if rh, err := rawExchange(t, holder, forged); err == nil && rh.Code == wire.CodeOK {
		t.Errorf("the captured order with FlagPrefix added, replayed to %s, was taken", holder.Addr())
	}

	// What the job's clients find on the holder.
	for _, key := range []string{"tmp", "kept"} {
		if err := jobOp(t, holder, wire.OpGet, job, key, tok, 0, 0); err != nil {
			t.Errorf("get %s/%s on the node after the replays: %v", job, key, err)
		}
	}
	if u := holder.jobUsage([]byte(job)); u == 0 {
		t.Errorf("the node holds 0 bytes of %s after the replays: its persist-after-job value %q is gone", job, "kept")
	}
}
