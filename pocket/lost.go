package pocket

import (
	"errors"
	"fmt"
	"slices"
	"strings"

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
//     node, made when the map is set;
//   - a draining node is left out of that placement too (unless every
//     node drains): from the start of its drain its keys' writes go to
//     their live owners, and its mover takes its values there, so a
//     value not at the draining node was at the live owner. Without
//     that, a live owner lost while a node drained out of the job's map
//     (restarted as the job shrank) left the values put there reading
//     "not found" until the drain ended.
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

// lostSet places keys as the job placed them in the time before one of
// its nodes was lost (an era): over the map's nodes that held their whole
// share before that epoch (Node.Since < epoch) and the lost nodes still in
// the map then (LostNode.Epoch not before it). An index of first or more
// is lost[index-first].
type lostSet struct {
	set   *placement.Set
	first int
	lost  []LostNode
}

// lostSets are the placements a "not found" is checked against: one per
// epoch a node was lost at, oldest first. Nil when no node is lost.
// Before, every set held every lost node, also those lost before its
// epoch, which were no longer in the map: a key written after a node had
// left could be named as that node's (a new user's trial: keys put after
// node A was lost, then lost with node B, answered "was on node A").
func lostSets(m Map) []lostSet {
	if len(m.Lost) == 0 {
		return nil
	}
	epochs := make([]uint64, len(m.Lost))
	for i, l := range m.Lost {
		epochs[i] = l.Epoch
	}
	slices.Sort(epochs)
	epochs = slices.Compact(epochs)
	// A draining node is left out as well (unless every node drains, as
	// liveSet does): from the start of its drain every write of its keys
	// goes to their live owners, and its mover takes what it holds there,
	// so a key's value is at its live owner, or still at the draining node
	// (where a read finds it: the draining node is its old owner). A
	// "not found" then means the value, if any, was at the live owner: a
	// lost node that was the key's live owner held it. Placing over the
	// draining node too named it, not the lost node, for the keys it owns
	// under the whole map: until its drain ended (the node leaving the
	// map, which gives the same placement as leaving it out), values put
	// at a live owner lost meanwhile (it restarted while the job shrank)
	// read "not found" (a hostile trial: stat, delete and delete-after-read
	// of acknowledged values). The cost: while it drains, a key it held
	// before a loss and never wrote again may answer lost instead of "not
	// found", as it does anyway once it has left.
	live := slices.ContainsFunc(m.Nodes, func(n Node) bool { return !m.Draining[n.Addr] })
	out := make([]lostSet, 0, len(epochs))
	for _, e := range epochs {
		var ns []placement.Node
		for _, n := range m.Nodes {
			if n.Since < e && !(live && m.Draining[n.Addr]) {
				ns = append(ns, placement.Node{ID: n.Addr, Weight: n.Weight})
			}
		}
		s := lostSet{first: len(ns)}
		for _, l := range m.Lost {
			if l.Epoch >= e {
				ns = append(ns, placement.Node{ID: l.Addr, Weight: l.Weight})
				s.lost = append(s.lost, l)
			}
		}
		s.set = placement.NewSet(ns)
		out = append(out, s)
	}
	return out
}

// lostOwners returns the lost nodes that owned (key, chunk) in some era
// (lostSets), oldest loss first, each loss once (an address lost twice,
// restarted and taken back between, is two losses): which one held the
// value depends on when it was written, which the SDK does not know.
// Before, an address lost twice was named once, with its first loss's
// epoch, also for keys written after it came back (a new user's trial).
func (j *Job) lostOwners(key []byte, chunk uint32) []LostNode {
	j.mu.RLock()
	defer j.mu.RUnlock()
	var out []LostNode
	for _, s := range j.lost {
		if i := s.set.Pick(key, chunk) - s.first; i >= 0 && !slices.Contains(out, s.lost[i]) {
			out = append(out, s.lost[i])
		}
	}
	return out
}

// LostOwners lists the lost nodes of the job's map (Map.Lost) that owned
// key when they left it: a value of key not found on the job's nodes was
// on one of them if it was written, and is gone. Empty when none did.
func (j *Job) LostOwners(key string) []LostNode { return j.lostOwners([]byte(key), 0) }

// lostErr turns a "not found" for (key, chunk) into ErrLost when the
// key's owner was a lost node; it returns every other error as it is.
func (j *Job) lostErr(key []byte, chunk uint32, err error) error {
	if !errors.Is(err, wire.ErrNotFound) {
		return err
	}
	ls := j.lostOwners(key, chunk)
	if len(ls) == 0 {
		return err
	}
	// A chunk's loss: the value's manifest and its other chunks are on
	// other nodes, and stay (counted in the job's bytes) until the value
	// is deleted or put again. Before, it read as the whole value's
	// loss on the chunk's node (a trial's finding).
	what, gone := "the value (if it was written)", "it is gone, recompute it"
	if chunk > 0 {
		what = fmt.Sprintf("chunk %d of the value", chunk)
		gone = "the value is gone; its manifest and other chunks are on other nodes until it is deleted or put again"
	}
	if len(ls) == 1 {
		return &wire.Error{Code: wire.CodeLost, Msg: fmt.Sprintf(
			"%s was on node %s, which left the job's map at epoch %d without handing its values over (it died or restarted, its drain ran out of time, or, for an ended job, a drain discarded them: --discard-persisted): %s",
			what, ls[0].Addr, ls[0].Epoch, gone)}
	}
	names := make([]string, len(ls))
	for i, l := range ls {
		names[i] = fmt.Sprintf("%s (at epoch %d)", l.Addr, l.Epoch)
	}
	return &wire.Error{Code: wire.CodeLost, Msg: fmt.Sprintf(
		"%s was on one of the nodes %s, which left the job's map without handing their values over, depending on when it was written: %s",
		what, strings.Join(names, ", "), gone)}
}
