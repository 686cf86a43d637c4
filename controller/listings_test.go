package controller

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/pocketstore/pocket/wire"
)

// ask sends one control request on a new plain connection to addr and
// returns the reply's code, metadata length and error.
func ask(t *testing.T, addr string, op wire.Op, msg wire.ControlMessage) (wire.Code, int, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	var meta []byte
	if msg != nil {
		meta = msg.Encode(flatbuffers.NewBuilder(0))
	}
	if _, err := conn.Write(wire.AppendControlFrame(nil, op, 1, 0, meta)); err != nil {
		t.Fatal(err)
	}
	lim := wire.ControlLimits()
	h, rmeta, err := wire.ReadControlFrame(bufio.NewReader(conn), &lim, nil)
	if err != nil {
		t.Fatal(err)
	}
	return h.Code, len(rmeta), wire.ReplyError(&h, rmeta)
}

// TestListingsTakeTurns (hostile re-check, 2026-12-07): at most
// maxListings listings are built at once; one that finds no turn within
// listingWait is refused busy, while requests that are no listing are
// served meanwhile. Before, 300 plain connections asking for pages of
// jobs back to back held the controller's lock and cores, and every
// node's heartbeat timed out.
func TestListingsTakeTurns(t *testing.T) {
	c := newTest(t, Config{})
	a, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	for range maxListings {
		c.listings <- struct{}{} // every turn taken
	}
	start := time.Now()
	code, _, err := ask(t, a.String(), wire.OpStatus, nil)
	if code != wire.CodeBusy || !strings.Contains(err.Error(), "other listings") {
		t.Fatalf("status with every turn taken: %v %v; want busy", code, err)
	}
	if d := time.Since(start); d < listingWait {
		t.Errorf("refused after %v; want after waiting %v for a turn", d, listingWait)
	}
	if code, _, err := ask(t, a.String(), wire.OpChallenge, &wire.Challenge{}); code != wire.CodeOK {
		t.Fatalf("a challenge while the listings' turns are taken: %v %v; want it answered", code, err)
	}
	for range maxListings {
		<-c.listings
	}
	if code, _, err := ask(t, a.String(), wire.OpStatus, nil); code != wire.CodeOK {
		t.Fatalf("status with turns free: %v %v", code, err)
	}
}

// longNamedJobs is a listening controller of cfg holding n jobs of
// 203-byte names on one node, so a page of them is a large reply, and its
// address.
func longNamedJobs(t *testing.T, cfg Config, n int) (*Controller, string) {
	t.Helper()
	c := newTest(t, cfg)
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<40, 1e6))
	for i := range n {
		if _, err := c.RegisterJob(fmt.Sprintf("%s%03d", strings.Repeat("l", 200), i), wire.JobHints{}); err != nil {
			t.Fatal(err)
		}
	}
	a, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return c, a.String()
}

// TestLargeRepliesAreBounded (hostile re-check, 2026-12-07): a reply over
// wire.ReadGrowStep counts against MaxLargeFrameBytes while it is written,
// for a connection that has not proved the node role against its quarter:
// past it the request is answered busy. Before, replies were not counted,
// and 1,000 connections that each read one 673 KB page of jobs, then
// idled, held 2.97 GB of the controller's memory.
func TestLargeRepliesAreBounded(t *testing.T) {
	c, addr := longNamedJobs(t, Config{MaxLargeFrameBytes: 16 << 20}, 400)
	list := &wire.JobList{Limit: 1000}
	code, n, err := ask(t, addr, wire.OpListJobs, list)
	if code != wire.CodeOK || n <= wire.ReadGrowStep {
		t.Fatalf("a page of 400 long-named jobs: %v, %d bytes, %v; want a large reply", code, n, err)
	}
	c.unprovenFrames.Add(c.unprovenLargeBytes() - int64(n)/2) // the unproven share all but taken
	code, _, err = ask(t, addr, wire.OpListJobs, list)
	if code != wire.CodeBusy || !strings.Contains(err.Error(), "reply of") {
		t.Fatalf("a large reply past the unproven share: %v %v; want busy", code, err)
	}
	c.unprovenFrames.Add(-(c.unprovenLargeBytes() - int64(n)/2))
	if code, _, err := ask(t, addr, wire.OpListJobs, list); code != wire.CodeOK {
		t.Fatalf("the page once the share is free: %v %v", code, err)
	}
	// The count goes once the write has returned, which may be after
	// the client read the reply.
	for deadline := time.Now().Add(5 * time.Second); c.largeFrames.Load() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes still counted 5 s after the replies were written", c.largeFrames.Load())
		}
	}
}

// TestRefusedLargeReplyLetsItsBuilderGo (hostile re-check, 2026-12-07):
// a connection whose large reply was refused busy keeps no buffer of it
// while it idles. Before, the builder that had grown to hold the reply
// stayed with the connection: 900 idle connections held 712 MB.
func TestRefusedLargeReplyLetsItsBuilderGo(t *testing.T) {
	const conns = 40
	c, addr := longNamedJobs(t, Config{MaxLargeFrameBytes: 16 << 20, MaxConnsPerPeer: -1}, 600)
	c.unprovenFrames.Add(c.unprovenLargeBytes()) // the unproven share taken: every large reply is refused
	defer c.unprovenFrames.Add(-c.unprovenLargeBytes())
	meta := (&wire.JobList{Limit: 1000}).Encode(flatbuffers.NewBuilder(0))
	base := heapInUse()
	for i := range conns {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write(wire.AppendControlFrame(nil, wire.OpListJobs, 1, 0, meta)); err != nil {
			t.Fatal(err)
		}
		lim := wire.ControlLimits()
		h, _, err := wire.ReadControlFrame(bufio.NewReader(conn), &lim, nil)
		if err != nil || h.Code != wire.CodeBusy {
			t.Fatalf("connection %d: %v %v; want the large reply refused busy", i, h.Code, err)
		}
	}
	// Each reply is over 128 KiB, and its builder grew past it. A
	// builder goes once its connection's write has returned, which may be
	// after the client read the reply.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		grew := heapInUse() - min(base, heapInUse())
		if grew <= 2<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d idle connections whose large replies were refused hold %d bytes of heap; want their builders let go", conns, grew)
		}
	}
}
