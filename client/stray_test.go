package client_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/wire"
)

// strayThenReply serves one request: stray reply headers (ids never sent)
// every 50 ms, n of them (forever when n < 0), then, for n >= 0, the reply.
// With trickle, each stray header goes a byte every 20 ms.
func strayThenReply(t *testing.T, n int, trickle bool) string {
	return oneRequestNode(t, func(nc net.Conn, h wire.Header) {
		for i := 0; n < 0 || i < n; i++ {
			rh := wire.Header{Op: h.Op.Reply(), ID: 1<<40 + uint64(i)}
			if writeStray(nc, wire.AppendHeader(nil, &rh), trickle) != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		rh := wire.Header{Op: h.Op.Reply(), ID: h.ID}
		nc.Write(wire.AppendHeader(nil, &rh))
		time.Sleep(time.Second)
	})
}

// writeStray writes frame whole, or a byte every 20 ms (trickle).
func writeStray(nc net.Conn, frame []byte, trickle bool) error {
	if !trickle {
		_, err := nc.Write(frame)
		return err
	}
	for i := range frame {
		if _, err := nc.Write(frame[i : i+1]); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// TestStrayRepliesAreNotHeard: a node that sends stray reply headers (ids
// nobody waits for), whole or trickled, and never the reply fails the
// call after Silence. A hostile trial's node sent one every 500 ms: its
// stray frames counted as hearing from the node, and a get with Silence
// 2 s waited out its whole 20 s context.
func TestStrayRepliesAreNotHeard(t *testing.T) {
	for _, trickle := range []bool{false, true} {
		addr := strayThenReply(t, -1, trickle)
		c := client.New(client.Options{ConnsPerNode: 1, Silence: 300 * time.Millisecond})
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		took, err := silentCall(t, 10*time.Second, func() error {
			_, err := c.Do(ctx, addr, wire.OpGet, 0, &wire.Request{Job: []byte("j"), Key: []byte("k")}, nil, nil)
			return err
		})
		if !errors.Is(err, wire.ErrUnavailable) || !strings.Contains(err.Error(), "nothing received for 300ms") || took > 3*time.Second {
			t.Fatalf("get answered only by stray frames (trickled: %v): %v after %v; want unavailable on silence within 3 s", trickle, err, took)
		}
	}
}

// TestStrayRepliesAreTolerated: stray replies before the real one do not
// fail the connection (a node may answer what the client no longer
// tracks), even past Silence: the call gets its reply.
func TestStrayRepliesAreTolerated(t *testing.T) {
	addr := strayThenReply(t, 3, false)
	c := client.New(client.Options{ConnsPerNode: 1, Silence: 2 * time.Second})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Do(ctx, addr, wire.OpGet, 0, &wire.Request{Job: []byte("j"), Key: []byte("k")}, nil, nil); err != nil {
		t.Fatalf("get answered after 3 stray frames: %v", err)
	}
}
