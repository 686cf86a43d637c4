package client_test

import (
	"context"
	"errors"
	"io"
	"net"
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // read nothing, answer nothing
		}
	}()
	c := client.New(client.Options{ConnsPerNode: 1, Silence: 200 * time.Millisecond})
	defer c.Close()
	payload := make([]byte, 32<<20)
	_, err = silentCall(t, 10*time.Second, func() error {
		_, err := c.Do(context.Background(), ln.Addr().String(), wire.OpPut, 0, &wire.Request{Job: []byte("j"), Key: []byte("k")}, payload, nil)
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
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
	}()
	c := client.New(client.Options{ConnsPerNode: 1, Silence: 200 * time.Millisecond})
	defer c.Close()
	r, err := c.Do(context.Background(), ln.Addr().String(), wire.OpGet, 0, &wire.Request{Job: []byte("j"), Key: []byte("k")}, nil, nil)
	if err != nil || string(r.Payload) != "pong" {
		t.Fatalf("a trickled reply: %q, %v", r.Payload, err)
	}
}
