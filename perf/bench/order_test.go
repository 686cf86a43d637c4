package bench

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/wire"
)

// TestNodeDriverVerdictsInSendOrder: a node answering a pipeline out of
// order still gets each verdict handed back for the request it answers,
// in send order (Conn), so the generator marks written the key whose put
// succeeded, not the one whose put was refused.
func TestNodeDriverVerdictsInSendOrder(t *testing.T) {
	// Request 1 (the first sent) succeeds; request 2 is refused; the node
	// answers 2 first.
	refused := wire.Header{Op: wire.OpPut.Reply(), ID: 2, Code: wire.CodeNoSpace}
	ok := wire.Header{Op: wire.OpPut.Reply(), ID: 1}
	stream := wire.AppendHeader(wire.AppendHeader(nil, &refused), &ok)
	opts := client.ConnOptions{Job: []byte("bench"), BufferSize: bufSize}
	c := newPocketConn(client.NewConn(&replayConn{replies: stream}, opts), opts, new(atomic.Uint64), 8)
	for _, key := range []string{"stored", "refused"} {
		if err := c.SendPut([]byte(key), []byte("12345678")); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := c.Recv(); err != nil {
		t.Fatalf("verdict on the first put (acknowledged, answered second): %v, want success", err)
	}
	if err := c.Recv(); !errors.Is(err, ErrResponse) {
		t.Fatalf("verdict on the second put (refused, answered first): %v, want ErrResponse", err)
	}
	if err := c.Recv(); err == nil {
		t.Fatal("a third Recv with nothing outstanding succeeded")
	}
}
