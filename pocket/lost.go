package pocket

import (
	"errors"
	"fmt"

	"github.com/pocketstore/pocket/internal/placement"
	"github.com/pocketstore/pocket/wire"
)

// Values lost with a dead node
//
// A node that stays dead past the controller's grace leaves the job's map
// (package controller, dead.go) and the map lists it in Lost, with its
// weight on the scale of the map's current weights. Placement is weighted
// rendezvous hashing, which a common factor on every weight does not
// change, so placing a (key, chunk) over the map's nodes and its lost
// nodes together gives the node it had before any of them left. A read
// (Get, Stat, NewReader, GetFile, a chunk of a large object) that answers
// "not found" asks that, with no extra round trip: when that node is a
// lost one the answer is ErrLost (wire.CodeLost: "the value's node left
// the map: recompute it"), naming the node and the epoch it left at,
// instead of ErrNotFound.
//
// So a lost value never reads as "not found", and:
//
//   - a key written again after the loss lives on a remaining node and
//     reads normally; writes are placed over the map's nodes only;
//   - a key never written whose owner would have been a lost node also
//     answers ErrLost ("may have been lost"): the SDK cannot tell it from
//     one that was lost without a lookup, which it never makes. Exists
//     answers false for both;
//   - a large object whose manifest survived but one of whose chunks was
//     on a lost node answers ErrLost (after reading the key once more, in
//     case the object was replaced meanwhile), neither ErrCorrupt nor a
//     retry loop; a stream reading it answers ErrLost from Read;
//   - a map lists at most wire.MaxLostNodes lost nodes (the newest); the
//     keys of nodes that left the list answer "not found" again. The
//     controller stores the list with the job, so it outlives a
//     controller restart;
//   - the controller keeps the lost weights on the map's scale through
//     every later change of the map (a shrink, a drain, another loss), so
//     a lost node keeps its keys. A node that joins the map after the loss
//     takes its share, 1/(n+1) with n nodes before it, of the lost node's
//     keys too, as of every other node's: those of the lost values answer
//     "not found", since placement does not know when a node joined.
//
// While a node is dead but within the grace it stays in the map, marked
// dead: reads and writes of its keys answer ErrUnavailable at once. A
// request that finds its node unavailable (refused connection, dead in the
// map) fetches the map again, at most once a refreshGap per job, and
// retries once if the map changed: this is how a client learns that a
// node left.

// LostNode is a node that left a job's map because it was dead past the
// controller's grace: the values it held are gone. Weight is on the scale
// of the map's Nodes' weights; Epoch is the first map epoch without it.
type LostNode struct {
	Addr   string
	Weight float64
	Epoch  uint64
}

// lostFromWire converts the controller's lost nodes.
func lostFromWire(ls []wire.LostNode) []LostNode {
	if len(ls) == 0 {
		return nil
	}
	out := make([]LostNode, len(ls))
	for i, l := range ls {
		out[i] = LostNode{Addr: l.Addr, Weight: l.Weight, Epoch: l.Epoch}
	}
	return out
}

// withLostSet is the placement set of the map's nodes and its lost nodes
// (nil when none is lost).
func withLostSet(m Map) *placement.Set {
	if len(m.Lost) == 0 {
		return nil
	}
	ns := placementNodes(m.Nodes)
	for _, l := range m.Lost {
		ns = append(ns, placement.Node{ID: l.Addr, Weight: l.Weight})
	}
	return placement.NewSet(ns)
}

// lostOwner returns the lost node that owned (key, chunk), if any.
func (j *Job) lostOwner(key []byte, chunk uint32) (LostNode, bool) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.all == nil {
		return LostNode{}, false
	}
	i := j.all.Pick(key, chunk) - len(j.m.Nodes)
	if i < 0 {
		return LostNode{}, false
	}
	return j.m.Lost[i], true
}

// lostErr turns a "not found" for (key, chunk) into ErrLost when the
// key's owner was a lost node; it returns every other error as it is.
func (j *Job) lostErr(key []byte, chunk uint32, err error) error {
	if !errors.Is(err, wire.ErrNotFound) {
		return err
	}
	l, ok := j.lostOwner(key, chunk)
	if !ok {
		return err
	}
	return &wire.Error{Code: wire.CodeLost, Msg: fmt.Sprintf(
		"the value (if it was written) was on node %s, which left the job's map dead at epoch %d: it is gone, recompute it",
		l.Addr, l.Epoch)}
}
