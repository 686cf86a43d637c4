package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/internal/nettest"
	"github.com/pocketstore/pocket/wire"
)

// TestNotSentTellsDialFromLostReply: a request whose dial fails, or that
// meets a connection known dead, never reached a node (NotSent); one
// whose node read the whole frame and then closed the connection without
// a reply may have been executed (not NotSent). Both still match
// wire.ErrUnavailable and give up their *wire.Error to errors.As.
func TestNotSentTellsDialFromLostReply(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := client.New(client.Options{DialTimeout: time.Second})
	defer c.Close()

	gone := nettest.RefusedAddr(t)
	_, err := c.Do(ctx, gone, wire.OpPing, 0, &wire.Request{}, nil, nil)
	checkUnavailable(t, "failed dial", err, true)

	read := make(chan struct{}, 1)
	addr := swallower(t, read)
	_, err = c.Do(ctx, addr, wire.OpPut, 0, &wire.Request{Key: []byte("k")}, []byte("value"), nil)
	checkUnavailable(t, "reply lost after the frame was read", err, false)
	select {
	case <-read:
	default:
		t.Fatal("the node never read the whole frame")
	}
}

// checkUnavailable fails t unless err is an Unavailable error that NotSent
// reports as want.
func checkUnavailable(t *testing.T, what string, err error, want bool) {
	t.Helper()
	var we *wire.Error
	switch {
	case !errors.Is(err, wire.ErrUnavailable):
		t.Fatalf("%s: %v, want unavailable", what, err)
	case !errors.As(err, &we) || we.Code != wire.CodeUnavailable:
		t.Fatalf("%s: errors.As finds no *wire.Error of code unavailable in %v", what, err)
	case client.NotSent(err) != want:
		t.Fatalf("%s: NotSent(%v) = %v, want %v", what, err, !want, want)
	}
}

// swallower listens on loopback; on each connection it reads one whole
// request frame, signals read, and closes the connection unanswered.
func swallower(t *testing.T, read chan<- struct{}) string {
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
			lim := wire.DefaultLimits()
			hdr := make([]byte, wire.HeaderLen)
			if _, err := io.ReadFull(nc, hdr); err == nil {
				if h, err := wire.ParseHeader(hdr, &lim); err == nil {
					if _, err := io.CopyN(io.Discard, nc, int64(h.MetaLen)+int64(h.PayloadLen)); err == nil {
						select {
						case read <- struct{}{}:
						default:
						}
					}
				}
			}
			nc.Close()
		}
	}()
	return ln.Addr().String()
}

// TestNotSentMarks: NotSent is false for any error not marked, and a mark
// survives wrapping and keeps the message and code.
func TestNotSentMarks(t *testing.T) {
	for _, err := range []error{nil, context.Canceled, wire.ErrNotFound, &wire.Error{Code: wire.CodeUnavailable, Msg: "x"}} {
		if client.NotSent(err) {
			t.Errorf("NotSent(%v) = true", err)
		}
	}
	m := client.MarkNotSent(&wire.Error{Code: wire.CodeUnavailable, Msg: "node x is dead"})
	wrapped := fmt.Errorf("put %q: %w", "k", m)
	if !client.NotSent(wrapped) || !errors.Is(wrapped, wire.ErrUnavailable) || m.Error() != (&wire.Error{Code: wire.CodeUnavailable, Msg: "node x is dead"}).Error() {
		t.Errorf("MarkNotSent: %v (NotSent of it wrapped: %v)", m, client.NotSent(wrapped))
	}
	if client.MarkNotSent(context.Canceled) != context.Canceled {
		t.Error("MarkNotSent marked a context's error")
	}
}

// TestIdleConnClosedByNodeIsRedialled: a pooled connection the node closed
// while it sat idle (a node stopped, or restarted) is found closed before
// a request is written to it, and a new one is dialled: the request
// succeeds. Before, the frame went into the dead connection and the call
// failed unavailable after it was written, its outcome unknown to the
// caller (NotSent false), though the node never saw it.
func TestIdleConnClosedByNodeIsRedialled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr, conns := oneReplyNode(t)
	c := client.New(client.Options{ConnsPerNode: 1})
	defer c.Close()
	for i := 0; i < 3; i++ {
		if _, err := c.Do(ctx, addr, wire.OpPing, 0, &wire.Request{}, nil, nil); err != nil {
			t.Fatalf("request %d, on a connection the node closed after its last reply: %v (NotSent %v)", i, err, client.NotSent(err))
		}
		time.Sleep(100 * time.Millisecond) // the node's close arrives; the connection idles
	}
	if n := conns.Load(); n != 3 {
		t.Fatalf("%d connections dialled for 3 requests, want 3", n)
	}
}

// oneReplyNode listens on loopback and, on each connection, answers one
// request (an empty OK reply) and closes the connection. conns counts the
// connections accepted.
func oneReplyNode(t *testing.T) (string, *atomic.Int32) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var conns atomic.Int32
	go func() {
		lim := wire.DefaultLimits()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			hdr := make([]byte, wire.HeaderLen)
			if _, err := io.ReadFull(nc, hdr); err == nil {
				if h, err := wire.ParseHeader(hdr, &lim); err == nil {
					if _, err := io.CopyN(io.Discard, nc, int64(h.MetaLen)+int64(h.PayloadLen)); err == nil {
						reply := wire.Header{Op: h.Op.Reply(), ID: h.ID}
						var out [wire.HeaderLen]byte
						wire.PutHeader(out[:], &reply)
						_, _ = nc.Write(out[:])
					}
				}
			}
			nc.Close()
		}
	}()
	return ln.Addr().String(), &conns
}
