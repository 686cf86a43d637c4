package pocket

import (
	"errors"
	"fmt"
	"slices"

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
//     a lost node keeps its keys;
//   - a node that did not hold its whole share when a node was lost (it
//     was joining, or taking a draining node's share, or it came later:
//     Node.Since not before the LostNode's Epoch) never held what the lost
//     node held, so the placement that finds the lost node leaves it out.
//     Without that, a node joining after the loss took 1/(n+1) of the lost
//     node's keys, and an old owner lost while its values moved to a
//     joining node left those values reading "not found". There is one
//     placement per distinct set of nodes left out, at most one per lost
//     node, made when the map is set.
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

// lostSet places keys over the map's nodes that held their whole share
// before epoch (Node.Since < epoch), then every lost node: an index of
// first or more is the lost node first places.
type lostSet struct {
	set   *placement.Set
	first int
}

// lostSets are the placements a "not found" is checked against: for each
// epoch a node was lost at, oldest first, the nodes that held their whole
// share before it and the lost nodes; one set for the epochs that leave
// the same nodes out. Nil when no node is lost.
func lostSets(m Map) []lostSet {
	if len(m.Lost) == 0 {
		return nil
	}
	epochs := make([]uint64, len(m.Lost))
	for i, l := range m.Lost {
		epochs[i] = l.Epoch
	}
	slices.Sort(epochs)
	var out []lostSet
	last := -1
	for _, e := range epochs {
		var ns []placement.Node
		for _, n := range m.Nodes {
			if n.Since < e {
				ns = append(ns, placement.Node{ID: n.Addr, Weight: n.Weight})
			}
		}
		if len(ns) == last {
			continue // the nodes held before e are those held before the last epoch
		}
		last = len(ns)
		first := len(ns)
		for _, l := range m.Lost {
			ns = append(ns, placement.Node{ID: l.Addr, Weight: l.Weight})
		}
		out = append(out, lostSet{set: placement.NewSet(ns), first: first})
	}
	return out
}

// lostOwner returns the lost node that owned (key, chunk), if any: the
// one a placement of lostSets places it on.
func (j *Job) lostOwner(key []byte, chunk uint32) (LostNode, bool) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	for _, s := range j.lost {
		if i := s.set.Pick(key, chunk) - s.first; i >= 0 {
			return j.m.Lost[i], true
		}
	}
	return LostNode{}, false
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
