package metaclient

import (
	"bufio"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/pocketstore/pocket/wire"
)

// mapController is a fake controller answering every request with m.
func mapController(t *testing.T, m wire.PlacementMap) string {
	meta := m.Encode(flatbuffers.NewBuilder(256))
	return fakeController(t, func(wire.Header) (wire.Code, []byte) { return wire.CodeOK, meta })
}

// fakeController is a controller on loopback answering each request on
// every connection, in order, with the code and metadata answer gives for
// its header; it stops at the test's end.
func fakeController(t *testing.T, answer func(h wire.Header) (wire.Code, []byte)) string {
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
				br := bufio.NewReader(nc)
				lim := wire.ControlLimits()
				for {
					h, _, err := wire.ReadControlFrame(br, &lim, nil)
					if err != nil {
						return
					}
					code, meta := answer(h)
					nc.Write(wire.AppendControlFrame(nil, h.Op.Reply(), h.ID, code, meta))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestMapOfAnotherJobIsRefused: a controller (broken or hostile) that
// answers a job's map request with another job's map, or a map naming a
// node twice, gets an error, not a map: the job's requests, with its
// token, would go to the other job's nodes, and rendezvous hashing would
// give a node listed twice two draws. On the code before, both maps were
// taken (a hostile trial).
func TestMapOfAnotherJobIsRefused(t *testing.T) {
	for _, c := range []struct {
		name string
		m    wire.PlacementMap
	}{
		{"another job's", wire.PlacementMap{Job: "other-2", Epoch: 1, Nodes: []wire.MapNode{{Addr: "a:1", Weight: 1}}}},
		{"a node twice", wire.PlacementMap{Job: "j-1", Epoch: 1, Nodes: []wire.MapNode{{Addr: "a:1", Weight: 1}, {Addr: "a:1", Weight: 1}}}},
	} {
		cl := New(mapController(t, c.m), Options{RetryFor: -1})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		for _, get := range []func(context.Context, string, []byte) (*wire.PlacementMap, error){cl.GetMap, cl.GetMapOrEnded} {
			m, err := get(ctx, "j-1", []byte("tok"))
			if !errors.Is(err, wire.ErrMalformed) {
				t.Errorf("%s map: job %q, %d nodes, err %v; want malformed", c.name, m.Job, len(m.Nodes), err)
			}
		}
		cancel()
		cl.Close()
	}
}
