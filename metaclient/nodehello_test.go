package metaclient_test

import (
	"bufio"
	"context"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// recorder is a stand-in controller that answers every op and records
// each connection's ops in order; it checks each OpNodeHello's proof.
// With unknownHello it answers OpNodeHello as an older controller does
// (CodeUnknownOp).
type recorder struct {
	ln           net.Listener
	wg           sync.WaitGroup
	unknownHello bool

	mu        sync.Mutex
	conns     [][]wire.Op
	open      []net.Conn
	badProofs int
}

func startRecorder(t *testing.T, unknownHello bool) *recorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{ln: ln, unknownHello: unknownHello}
	r.wg.Add(1)
	go r.serve()
	t.Cleanup(func() { ln.Close(); r.closeAll(); r.wg.Wait() })
	return r
}

func (r *recorder) serve() {
	defer r.wg.Done()
	for {
		conn, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		i := len(r.conns)
		r.conns = append(r.conns, nil)
		r.open = append(r.open, conn)
		r.mu.Unlock()
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer conn.Close()
			r.answer(conn, i)
		}()
	}
}

// closeAll closes every connection, as a controller restart would.
func (r *recorder) closeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.open {
		c.Close()
	}
	r.open = nil
}

// ops returns the ops of every connection so far, in order.
func (r *recorder) ops() [][]wire.Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([][]wire.Op, len(r.conns))
	for i, c := range r.conns {
		out[i] = slices.Clone(c)
	}
	return out
}

func (r *recorder) answer(conn net.Conn, i int) {
	br := bufio.NewReader(conn)
	lim := wire.ControlLimits()
	b := flatbuffers.NewBuilder(256)
	nonce := []byte("0123456789abcdef")
	for {
		h, meta, err := wire.ReadControlFrame(br, &lim, nil)
		if err != nil {
			return
		}
		r.mu.Lock()
		r.conns[i] = append(r.conns[i], h.Op)
		r.mu.Unlock()
		var reply wire.ControlMessage
		switch h.Op {
		case wire.OpChallenge:
			reply = &wire.Challenge{Nonce: nonce}
		case wire.OpNodeHello:
			if r.unknownHello {
				e := wire.Errorf(wire.CodeUnknownOp, "controller does not serve %s", h.Op)
				conn.Write(wire.AppendControlFrame(nil, h.Op.Reply(), h.ID, wire.CodeUnknownOp, wire.NewEncoder().ErrorResponse(e)))
				continue
			}
			var m wire.NodeHello
			if err := m.Decode(meta); err != nil || !token.VerifyNodeProof(secret, nonce, m.Addr, m.Proof) {
				r.mu.Lock()
				r.badProofs++
				r.mu.Unlock()
			}
			reply = &wire.NodeHello{}
		case wire.OpRegisterNode, wire.OpHeartbeat:
			reply = &wire.NodeAck{Known: true, Heartbeat: time.Hour}
		case wire.OpGetMap:
			reply = &wire.PlacementMap{Job: "j-1", Epoch: 2}
		default:
			return
		}
		conn.Write(wire.AppendControlFrame(nil, h.Op.Reply(), h.ID, wire.CodeOK, reply.Encode(b)))
	}
}

// TestNodeClientProvesEveryConnection: once RunNode runs on a client, each
// of the client's connections proves the node role (OpNodeHello, with a
// valid proof over its challenge) once, before its first call: the one
// already open before its next call, and one dialled after the controller
// closed it before its first. The heartbeat connection proves it too,
// before its registration: a heartbeat listing many jobs is a large frame,
// which the controller holds against a share peers without the secret can
// fill until the connection has proved the role (a hostile trial). A
// client that runs no RunNode sends none. An
// older controller that does not know OpNodeHello still serves the call,
// and is not asked again on the same connection.
func TestNodeClientProvesEveryConnection(t *testing.T) {
	getOp, helloOp, chOp := wire.OpGetMap, wire.OpNodeHello, wire.OpChallenge
	for _, older := range []bool{false, true} {
		rec := startRecorder(t, older)
		mc := metaclient.New(rec.ln.Addr().String(), metaclient.Options{Secret: secret, Logger: quiet})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		fetch := func() {
			t.Helper()
			if m, err := mc.GetMap(ctx, "j-1", []byte("tok")); err != nil || m.Epoch != 2 {
				t.Fatalf("older controller %v: map fetch: %+v %v", older, m, err)
			}
		}
		fetch() // no node's client yet: a plain call
		run := make(chan error, 1)
		go func() {
			run <- mc.RunNode(ctx, metaclient.NodeLoop{Register: wire.NodeRegister{Addr: "127.0.0.1:7001"}, Interval: time.Hour})
		}()
		for deadline := time.Now().Add(5 * time.Second); len(rec.ops()) < 2 || len(rec.ops()[1]) < 3; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("older controller %v: no registration: %v", older, rec.ops())
			}
		}
		fetch()
		fetch()
		rec.closeAll() // a controller restart: the fetches' connection is dialled anew (the heartbeats are an hour apart)
		fetch()
		fetch()
		cancel()
		<-run
		mc.Close()
		got := rec.ops()
		want := [][]wire.Op{
			{getOp, chOp, helloOp, getOp, getOp},
			{chOp, helloOp, wire.OpRegisterNode},
			{chOp, helloOp, getOp, getOp},
		}
		if len(got) != 3 || !slices.Equal(got[0], want[0]) || !slices.Equal(got[1], want[1]) || !slices.Equal(got[2], want[2]) {
			t.Fatalf("older controller %v: ops per connection %v; want %v", older, got, want)
		}
		rec.mu.Lock()
		bad := rec.badProofs
		rec.mu.Unlock()
		if bad != 0 {
			t.Fatalf("older controller %v: %d hellos with a proof that does not verify", older, bad)
		}
	}
}
