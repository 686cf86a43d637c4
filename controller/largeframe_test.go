package controller

import (
	"bufio"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/wire"
)

// largeClaimer opens connections to a controller at addr that each send a
// header claiming n bytes of metadata and all of them but the last.
type largeClaimer struct {
	t    *testing.T
	addr string
}

// claim returns the connection and the reply, if one came within 500 ms
// (nil: none, the controller waits for the rest). With proven the
// connection first proves the node role (a challenge, then OpNodeHello
// with the test secret's proof).
func (lc largeClaimer) claim(n int, proven bool) (net.Conn, error) {
	t := lc.t
	t.Helper()
	conn, err := net.Dial("tcp", lc.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	r := bufio.NewReader(conn)
	lim := wire.ControlLimits()
	if proven {
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		meta := lc.roundTrip(conn, r, wire.OpChallenge, (&wire.Challenge{}).Encode(flatbuffers.NewBuilder(0)))
		var ch wire.Challenge
		if err := ch.Decode(meta); err != nil {
			t.Fatal(err)
		}
		addr := "127.0.0.1:7001"
		lc.roundTrip(conn, r, wire.OpNodeHello, (&wire.NodeHello{Addr: addr, Proof: token.NodeProof(testSecret, ch.Nonce, addr)}).Encode(flatbuffers.NewBuilder(0)))
		conn.SetDeadline(time.Time{})
	}
	h := wire.Header{Op: wire.OpHeartbeat, ID: 1, MetaLen: uint32(n)}
	frame := append(wire.AppendHeader(nil, &h), make([]byte, n-1)...)
	go conn.Write(frame) // the controller may stop reading: do not block on it
	conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	rh, meta, err := wire.ReadControlFrame(r, &lim, nil)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return conn, nil
	}
	if err != nil {
		return conn, err
	}
	return conn, wire.ReplyError(&rh, meta)
}

// roundTrip sends one control request and returns its reply's metadata,
// failing the test on an error.
func (lc largeClaimer) roundTrip(conn net.Conn, r *bufio.Reader, op wire.Op, meta []byte) []byte {
	lc.t.Helper()
	if _, err := conn.Write(wire.AppendControlFrame(nil, op, 9, 0, meta)); err != nil {
		lc.t.Fatal(err)
	}
	lim := wire.ControlLimits()
	rh, rmeta, err := wire.ReadControlFrame(r, &lim, nil)
	if err == nil {
		err = wire.ReplyError(&rh, rmeta)
	}
	if err != nil {
		lc.t.Fatalf("%v: %v", op, err)
	}
	return append([]byte(nil), rmeta...)
}

func listenTest(t *testing.T, cfg Config) (*Controller, largeClaimer) {
	t.Helper()
	c := newTest(t, cfg)
	a, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return c, largeClaimer{t: t, addr: a.String()}
}

// TestLargeFramesUnderWayAreBounded: the metadata of large requests (over
// wire.ReadGrowStep) that all connections hold under way is bounded by
// Config.MaxLargeFrameBytes: past it a request is refused (CodeBusy)
// before its metadata is read, and a connection that closes gives its
// share back. Before, each connection could hold a 4 MiB frame: a hostile
// trial's 952 connections took the controller from 92 MB to 5.4 GB. Small
// requests are not counted.
func TestLargeFramesUnderWayAreBounded(t *testing.T) {
	_, lc := listenTest(t, Config{MaxLargeFrameBytes: 8 << 20})
	first, err := lc.claim(4<<20, true)
	if err != nil {
		t.Fatalf("the first 4 MiB request: %v; want it read", err)
	}
	if _, err := lc.claim(4<<20, true); err != nil {
		t.Fatalf("the second 4 MiB request: %v; want it read (8 MiB in all)", err)
	}
	if _, err := lc.claim(4<<20, true); !errors.Is(err, wire.ErrBusy) {
		t.Fatalf("a third 4 MiB request beside two under way: %v; want refused busy", err)
	}
	if _, err := lc.claim(64<<10, false); err != nil {
		t.Fatalf("a 64 KiB request beside them: %v; want it read (not counted)", err)
	}
	first.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := lc.claim(4<<20, true)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a 4 MiB request after one under way closed: %v; want it read", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestUnprovenLargeFramesLeaveTheNodesTheirShare (hostile trial,
// 2026-12-07): connections that have not proved the node role hold at
// most a quarter of MaxLargeFrameBytes together, so a node's large
// heartbeat is read while they hold theirs, and their refusal is noted
// (a silent node is then not taken out of the maps: dead.go). Before, 70
// plain connections with no credential, each sending the header of a
// 4 MiB request, held the whole bound; the nodes' heartbeats were refused
// busy, and the controller declared them dead and lost their jobs'
// values.
func TestUnprovenLargeFramesLeaveTheNodesTheirShare(t *testing.T) {
	c, lc := listenTest(t, Config{MaxLargeFrameBytes: 32 << 20}) // unproven: 8 MiB
	for i := range 2 {
		if _, err := lc.claim(4<<20, false); err != nil {
			t.Fatalf("unproven 4 MiB request %d: %v; want it read (8 MiB is their share)", i+1, err)
		}
	}
	before := c.srv.lastRefusal.Load()
	_, err := lc.claim(4<<20, false)
	if !errors.Is(err, wire.ErrBusy) || !strings.Contains(err.Error(), "not proved the node role") {
		t.Fatalf("a third unproven 4 MiB request: %v; want refused busy, naming the node role", err)
	}
	if c.srv.lastRefusal.Load() == before {
		t.Error("the refusal was not noted: a node refused so would be taken for dead and lost")
	}
	for i := range 6 {
		if _, err := lc.claim(4<<20, true); err != nil {
			t.Fatalf("a node's 4 MiB request %d beside the unproven share: %v; want it read", i+1, err)
		}
	}
	if _, err := lc.claim(4<<20, true); !errors.Is(err, wire.ErrBusy) {
		t.Fatalf("a node's request past the whole bound: %v; want refused busy", err)
	}
}
