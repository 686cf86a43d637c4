package controller

import (
	"bufio"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// TestLargeFramesUnderWayAreBounded: the metadata of large requests (over
// wire.ReadGrowStep) that all connections hold under way is bounded by
// Config.MaxLargeFrameBytes: past it a request is refused (CodeBusy)
// before its metadata is read, and a connection that closes gives its
// share back. Before, each connection could hold a 4 MiB frame: a hostile
// trial's 952 connections took the controller from 92 MB to 5.4 GB. Small
// requests are not counted.
func TestLargeFramesUnderWayAreBounded(t *testing.T) {
	c := newTest(t, Config{MaxLargeFrameBytes: 8 << 20})
	a, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// claim opens a connection, sends a header claiming n bytes of
	// metadata and all of them but the last, and returns the connection
	// and the reply, if one came within 500 ms (nil: none, the controller
	// waits for the rest).
	claim := func(n int) (net.Conn, error) {
		t.Helper()
		conn, err := net.Dial("tcp", a.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		h := wire.Header{Op: wire.OpHeartbeat, ID: 1, MetaLen: uint32(n)}
		frame := append(wire.AppendHeader(nil, &h), make([]byte, n-1)...)
		go conn.Write(frame) // the controller may stop reading: do not block on it
		conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		lim := wire.ControlLimits()
		rh, meta, err := wire.ReadControlFrame(bufio.NewReader(conn), &lim, nil)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return conn, nil
		}
		if err != nil {
			return conn, err
		}
		return conn, wire.ReplyError(&rh, meta)
	}
	first, err := claim(4 << 20)
	if err != nil {
		t.Fatalf("the first 4 MiB request: %v; want it read", err)
	}
	if _, err := claim(4 << 20); err != nil {
		t.Fatalf("the second 4 MiB request: %v; want it read (8 MiB in all)", err)
	}
	if _, err := claim(4 << 20); !errors.Is(err, wire.ErrBusy) {
		t.Fatalf("a third 4 MiB request beside two under way: %v; want refused busy", err)
	}
	if _, err := claim(64 << 10); err != nil {
		t.Fatalf("a 64 KiB request beside them: %v; want it read (not counted)", err)
	}
	first.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := claim(4 << 20)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a 4 MiB request after one under way closed: %v; want it read", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
