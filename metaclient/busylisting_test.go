package metaclient_test

import (
	"bufio"
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// TestBusyListingIsAskedAgain: a controller that answers a status busy
// (it builds a few listings at a time, controller/listings.go) is asked
// again within the call's retry bound, and the call succeeds once it
// answers. Before, `pocket status` failed at the first busy answer.
func TestBusyListingIsAskedAgain(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var asked atomic.Int32
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				lim := wire.ControlLimits()
				for {
					h, _, err := wire.ReadControlFrame(br, &lim, nil)
					if err != nil {
						return
					}
					if asked.Add(1) <= 2 {
						e := wire.Errorf(wire.CodeBusy, "the controller is building 2 other listings")
						conn.Write(wire.AppendControlFrame(nil, h.Op.Reply(), h.ID, wire.CodeBusy, wire.NewEncoder().ErrorResponse(e)))
						continue
					}
					st := &wire.ClusterStatus{NodeCount: 3}
					conn.Write(wire.AppendControlFrame(nil, h.Op.Reply(), h.ID, wire.CodeOK, st.Encode(flatbuffers.NewBuilder(0))))
				}
			}()
		}
	}()
	mc := metaclient.New(ln.Addr().String(), metaclient.Options{Logger: quiet})
	defer mc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := mc.Status(ctx)
	if err != nil || st.NodeCount != 3 || asked.Load() != 3 {
		t.Fatalf("status after two busy answers: %+v, %v, asked %d times; want the third answer", st, err, asked.Load())
	}
}
