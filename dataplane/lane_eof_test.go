package dataplane

import (
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// TestHalfCloseAnswersListingsWaitingOnTheLane: a client sends three
// listings while the scan lane is held by another, then shuts its writing
// side. They are answered busy at once, unrun, and the connection closes,
// the lane still held. On d757ab0 the connection stayed open until the
// lane reached them and then dropped them unanswered (a review: 3 s after
// a client's close, with a lane held 3 s); before it, the node closed at
// once, answering nothing.
func TestHalfCloseAnswersListingsWaitingOnTheLane(t *testing.T) {
	n, entered, release, scanned := laneNode(t)
	send := lister(t, n, make(chan error, 1))
	send("slow", 1)
	<-entered // the lane is held
	nc, err := net.Dial("tcp", n.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var out []byte
	for i := range 3 {
		out = append(out, frame(wire.OpList, 0, uint64(i+1), &wire.Request{Job: []byte("h")}, nil)...)
	}
	if _, err := nc.Write(out); err != nil {
		t.Fatal(err)
	}
	nc.(*net.TCPConn).CloseWrite()
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(nc)
	if err != nil {
		t.Fatalf("after %d bytes: %v (want the node's close while the lane is held)", len(got), err)
	}
	lim := wire.DefaultLimits()
	for i := range 3 {
		if len(got) < wire.HeaderLen {
			t.Fatalf("reply %d of 3 missing", i+1)
		}
		h, err := wire.ParseHeader(got[:wire.HeaderLen], &lim)
		if err != nil {
			t.Fatal(err)
		}
		var r wire.Response
		if err := wire.DecodeResponse(got[wire.HeaderLen:wire.HeaderLen+int(h.MetaLen)], &r); err != nil {
			t.Fatal(err)
		}
		if h.Code != wire.CodeBusy || !strings.Contains(r.Message, "input ended") {
			t.Fatalf("reply %d: %v %q, want busy, not run", i+1, h.Code, r.Message)
		}
		got = got[wire.HeaderLen+int(h.MetaLen)+int(h.PayloadLen):]
	}
	release()
	time.Sleep(50 * time.Millisecond) // the lane moves on past the dropped requests
	if slices.Contains(scanned(), "h") {
		t.Fatal("a listing answered as not run ran")
	}
}
