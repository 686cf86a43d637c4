package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/wire"
)

// Attacks on the mover (move.go) and the migration it runs
// (dataplane/migrate.go).

// fillJob stores count values of size bytes under the job on d.
func fillJob(t *testing.T, d *dataplane.DRAM, job string, count, size int) {
	t.Helper()
	for i := 0; i < count; i++ {
		p, err := d.Create([]byte(job), []byte(fmt.Sprintf("key/%08d", i)), int64(size), dataplane.Meta{})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range p.Buffers() {
			clear(b)
		}
		if _, err := p.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

// recordingSender counts the requests a move sends, and sends none.
type recordingSender struct{ sent int }

func (r *recordingSender) Do(ctx context.Context, addr string, op wire.Op, flags uint16, req *wire.Request, payload, dst []byte) (client.Reply, error) {
	r.sent++
	return client.Reply{}, wire.ErrUnavailable
}

// TestAttackMoveByForeignMap: a node handed a changing map it is not in,
// or in which it is the joining node, moves nothing and reports nothing:
// a move by such a map would send away values the node owns (every value
// of the job has another owner under a map without the node).
func TestAttackMoveByForeignMap(t *testing.T) {
	n, d := guardedNode(t, 16<<20, 1)
	const values = 200
	fillJob(t, d, moveJob, values, 64)
	self := n.Addr().String()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, mp := range []*wire.PlacementMap{
		{Job: moveJob, Epoch: 3, Nodes: []wire.MapNode{
			{Addr: "127.0.0.1:1", Weight: 1, State: wire.NodeActive}, {Addr: "127.0.0.1:2", Weight: 1, State: wire.NodeJoining}}},
		{Job: moveJob, Epoch: 3, Nodes: []wire.MapNode{
			{Addr: "127.0.0.1:1", Weight: 1, State: wire.NodeActive}, {Addr: self, Weight: 1, State: wire.NodeJoining}}},
	} {
		var s recordingSender
		rep, moving, err := moveByMap(context.Background(), n, mp, &s, self, time.Time{}, log)
		if moving || err != nil || rep != (wire.MoveReport{}) || s.sent != 0 {
			t.Errorf("map %+v: moving %v, report %+v, %d requests sent, err %v", mp.Nodes, moving, rep, s.sent, err)
		}
		if got := n.JobValues(moveJob); got != values {
			t.Fatalf("map %+v: %d of %d values left on the node", mp.Nodes, got, values)
		}
	}
}
