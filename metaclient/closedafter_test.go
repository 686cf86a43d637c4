package metaclient_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// lingeringRefuser is a controller that answers every connection's first
// request with code, and closes the connection a while later without
// reading more, as a follower's (or a busy controller's) close reaches a
// client late on a loaded machine. It counts the requests it read.
func lingeringRefuser(t *testing.T, code wire.Code, linger time.Duration) (string, *atomic.Int32) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var reqs atomic.Int32
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				lim := wire.ControlLimits()
				h, _, err := wire.ReadControlFrame(bufio.NewReader(conn), &lim, nil)
				if err != nil {
					return
				}
				reqs.Add(1)
				msg := wire.NewEncoder().ErrorResponse(wire.Errorf(code, "refused"))
				conn.Write(wire.AppendControlFrame(nil, h.Op.Reply(), h.ID, code, msg))
				time.Sleep(linger)
			}()
		}
	}()
	return ln.Addr().String(), &reqs
}

// TestNoCallOnAConnectionClosedAfterItsAnswer: after an answer the
// controller closes the connection after ("not leader", a limit's
// refusal), the client's next registration goes out on a new connection
// and gets its own answer. Before, it was written on the old connection,
// whose close dropIfClosed's short look had not yet seen, and failed with
// its outcome unknown (TestFollowerAnswersNotLeader under -race).
func TestNoCallOnAConnectionClosedAfterItsAnswer(t *testing.T) {
	for _, code := range []wire.Code{wire.CodeNotLeader, wire.CodeLimit} {
		addr, reqs := lingeringRefuser(t, code, 300*time.Millisecond)
		mc := metaclient.New(addr, metaclient.Options{Logger: quiet, RetryFor: -1})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		for i := range 3 {
			_, err := mc.RegisterJob(ctx, "x", wire.JobHints{})
			var we *wire.Error
			if !errors.As(err, &we) || we.Code != code {
				t.Errorf("%v: registration %d: %v; want the controller's answer", code, i, err)
			}
		}
		if n := reqs.Load(); n != 3 {
			t.Errorf("%v: the controller read %d requests; want 3", code, n)
		}
		cancel()
		mc.Close()
	}
}
