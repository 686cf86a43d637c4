package client_test

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/wire"
)

// silentCall runs call on a goroutine and returns its error, failing t if
// it has not returned within bound (on the old code it waited for ever).
func silentCall(t *testing.T, bound time.Duration, call func() error) (time.Duration, error) {
	t.Helper()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- call() }()
	select {
	case err := <-done:
		return time.Since(start), err
	case <-time.After(bound):
		t.Fatalf("the call still waits after %v on a node that sends nothing", bound)
		return 0, nil
	}
}

// oneRequestNode listens on loopback and serves one connection: it reads
// one request's header and hands it, with the connection, to serve (which
// reads the rest of the frame, or not). It returns the address.
func oneRequestNode(t *testing.T, serve func(nc net.Conn, h wire.Header)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		lim := wire.DefaultLimits()
		hdr := make([]byte, wire.HeaderLen)
		if _, err := io.ReadFull(nc, hdr); err != nil {
			return
		}
		h, err := wire.ParseHeader(hdr, &lim)
		if err != nil {
			return
		}
		serve(nc, h)
	}()
	return ln.Addr().String()
}

// TestSilentNodeFailsTheCall: a node that takes requests and sends
// nothing back, before a reply or in the middle of one, fails the calls
// waiting on it after Options.Silence, with CodeUnavailable naming the
// silence, though their context has no deadline. Before, they waited for
// ever (the CLI's data commands have no deadline).
func TestSilentNodeFailsTheCall(t *testing.T) {
	for _, key := range []string{"slow-never", "stall"} {
		t.Run(key, func(t *testing.T) {
			f := newFakeNode(t)
			c := client.New(client.Options{ConnsPerNode: 1, Silence: 200 * time.Millisecond})
			defer c.Close()
			took, err := silentCall(t, 10*time.Second, func() error {
				return f.get(context.Background(), c, key, nil)
			})
			if !errors.Is(err, wire.ErrUnavailable) || !strings.Contains(err.Error(), "nothing received for 200ms while a request waited for its reply") {
				t.Fatalf("get of %s from a silent node: %v; want unavailable, naming the silence", key, err)
			}
			if took < 200*time.Millisecond {
				t.Fatalf("failed after %v, before the silence", took)
			}
		})
	}
}

// TestNodeReadingNothingFailsTheWrite: a node that accepts and reads
// nothing blocks a large put's write once the sockets' buffers are full;
// the write fails after Options.Silence, as not sent.
func TestNodeReadingNothingFailsTheWrite(t *testing.T) {
	stop := make(chan struct{})
	defer close(stop)
	addr := oneRequestNode(t, func(net.Conn, wire.Header) { <-stop }) // reads no more, answers nothing
	c := client.New(client.Options{ConnsPerNode: 1, Silence: 200 * time.Millisecond})
	defer c.Close()
	payload := make([]byte, 32<<20)
	_, err := silentCall(t, 10*time.Second, func() error {
		_, err := c.Do(context.Background(), addr, wire.OpPut, 0, &wire.Request{Job: []byte("j"), Key: []byte("k")}, payload, nil)
		return err
	})
	if !errors.Is(err, wire.ErrUnavailable) || !strings.Contains(err.Error(), "while a request was being written") || !client.NotSent(err) {
		t.Fatalf("put to a node reading nothing: %v (not sent: %v); want unavailable, not sent, naming the silence", err, client.NotSent(err))
	}
}

// TestSlowSteadyReplyIsNotSilence: a reply that trickles in, a byte every
// 60 ms for over a second, is not silence with Silence at 200 ms: the
// call gets it.
func TestSlowSteadyReplyIsNotSilence(t *testing.T) {
	addr := oneRequestNode(t, func(nc net.Conn, h wire.Header) {
		if _, err := io.CopyN(io.Discard, nc, int64(h.MetaLen)+int64(h.PayloadLen)); err != nil {
			return
		}
		frame := wire.AppendHeader(nil, &wire.Header{Op: h.Op.Reply(), ID: h.ID, PayloadLen: 4})
		frame = append(frame, "pong"...)
		for i := range frame {
			time.Sleep(60 * time.Millisecond)
			if _, err := nc.Write(frame[i : i+1]); err != nil {
				return
			}
		}
		io.Copy(io.Discard, nc)
	})
	c := client.New(client.Options{ConnsPerNode: 1, Silence: 200 * time.Millisecond})
	defer c.Close()
	r, err := c.Do(context.Background(), addr, wire.OpGet, 0, &wire.Request{Job: []byte("j"), Key: []byte("k")}, nil, nil)
	if err != nil || string(r.Payload) != "pong" {
		t.Fatalf("a trickled reply: %q, %v", r.Payload, err)
	}
}

// TestSlowLinkIsNotSilence: a put whose frame has gone into the sockets'
// buffers waits for its reply while the node reads it slowly (64 KiB
// every 50 ms, about 1.3 MB/s, 2 MiB): the unsent bytes falling are
// movement, and with Silence at 300 ms the put gets its reply. Before,
// only reply bytes counted once the frame was written, and such a put
// failed (a hostile trial: 6 MiB over a 400 KB/s link).
func TestSlowLinkIsNotSilence(t *testing.T) {
	addr := oneRequestNode(t, func(nc net.Conn, h wire.Header) {
		for left := int64(h.MetaLen) + int64(h.PayloadLen); left > 0; {
			time.Sleep(50 * time.Millisecond)
			n, err := io.CopyN(io.Discard, nc, min(left, 64<<10))
			left -= n
			if err != nil {
				return
			}
		}
		nc.Write(wire.AppendHeader(nil, &wire.Header{Op: h.Op.Reply(), ID: h.ID}))
		io.Copy(io.Discard, nc)
	})
	c := client.New(client.Options{ConnsPerNode: 1, Silence: 300 * time.Millisecond})
	defer c.Close()
	payload := make([]byte, 2<<20)
	_, err := silentCall(t, 20*time.Second, func() error {
		_, err := c.Do(context.Background(), addr, wire.OpPut, 0, &wire.Request{Job: []byte("j"), Key: []byte("k")}, payload, nil)
		return err
	})
	if err != nil {
		t.Fatalf("a put read slowly but steadily: %v", err)
	}
}

// TestGivenUpCallsOnASilentNodeLeaveNothing: calls given up by their
// context on nodes that never answer leave replies owed to nobody; once
// nothing has moved for Silence those connections fail, and their drainer
// and watch end. Before, both stayed until Client.Close (a hostile trial:
// 2 goroutines and a descriptor per connection).
func TestGivenUpCallsOnASilentNodeLeaveNothing(t *testing.T) {
	c := client.New(client.Options{ConnsPerNode: 1, Silence: 200 * time.Millisecond})
	defer c.Close()
	base := runtime.NumGoroutine()
	for i := 0; i < 5; i++ {
		addr := oneRequestNode(t, func(nc net.Conn, _ wire.Header) { io.Copy(io.Discard, nc) }) // read everything, answer nothing
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err := c.Do(ctx, addr, wire.OpGet, 0, &wire.Request{Job: []byte("j"), Key: []byte("k")}, nil, nil)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("call %d: %v; want its deadline", i, err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base+5 { // the 5 fake nodes' own goroutines
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines 5 s after the calls were given up, %d before them (+5 fake nodes)", runtime.NumGoroutine(), base)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
