package state

import (
	"fmt"
	"math"
	"net"

	"github.com/pocketstore/pocket/wire"
)

// Range checks of the records a store loads (Snapshot.Check). A record
// whose bytes decode but whose values no run of the controller writes (a
// negative allotment, a tier this build does not know, a node address
// with port 99999) is refused at Load, naming the record, the field and
// the value, like a record that does not decode: before, such a record
// loaded, and then every status reply failed to encode ("allocated bytes:
// negative (-999)", without naming the job), or the job or node showed as
// tier(7) or dead (a hostile trial). The checks are only those no record
// the controller writes can fail: figures not negative and finite (the
// controller clamps them before saving: finiteJob), known tiers, roles
// and states, node addresses a dial can use (RegisterNode checks them),
// and the hints and tier figures within the bounds the status reply's
// decoder holds them to (registration and heartbeats check them: a
// re-check's hand-edited capacity hint of MaxInt64 started the
// controller, and every status then failed to decode).
//
// Profiles (and job traces) are not checked here: they are advisory, and
// the controller clamps their figures into bounds on load with a warning
// (Profile.Sanitize, Trace.Sanitize), as it always has.

// RecordError is a record that decodes but holds a value out of range.
type RecordError struct {
	Kind  string // "job" or "node"
	Key   string // the job id or node address
	Field string // the JSON field, with its index in a list
	Value any    // the value found
	Why   string // what is wrong with it
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("%s %q: %s = %v: %s; fix that record", e.Kind, e.Key, e.Field, e.Value, e.Why)
}

// Check reports the first record of s out of range (a *RecordError), or
// nil.
func (s *Snapshot) Check() error {
	for i := range s.Jobs {
		if err := s.Jobs[i].Check(); err != nil {
			return err
		}
	}
	for i := range s.Nodes {
		if err := s.Nodes[i].Check(); err != nil {
			return err
		}
	}
	return nil
}

// Check reports a field of the job's record (a live job's, or a revoked
// job's tombstone with its final map) out of range, as a *RecordError.
func (j *Job) Check() error {
	bad := func(field string, v any, why string) error {
		return &RecordError{Kind: "job", Key: j.ID, Field: field, Value: v, Why: why}
	}
	if j.ID == "" {
		return bad("id", `""`, "empty")
	}
	switch j.State {
	case JobLive, "": // restored as live, as always
		if !knownTier(j.Tier) {
			return bad("tier", j.Tier, "not a known tier (1 dram, 2 nvme)")
		}
	case JobRevoked:
		if j.Tier != 0 && !knownTier(j.Tier) { // 0: a tombstone without its final map
			return bad("tier", j.Tier, "not a known tier (1 dram, 2 nvme)")
		}
	default:
		return bad("state", fmt.Sprintf("%q", j.State), "neither live nor revoked")
	}
	if j.CapacityBytes < 0 || j.CapacityBytes > wire.MaxJobBytes {
		return bad("capacity_bytes", j.CapacityBytes, fmt.Sprintf("not from 0 to %d (wire.MaxJobBytes)", int64(wire.MaxJobBytes)))
	}
	if j.AllocBytes < 0 {
		return bad("alloc_bytes", j.AllocBytes, "negative")
	}
	if !okFloat(j.PeakMbps) || j.PeakMbps > wire.MaxJobMbps {
		return bad("peak_mbps", j.PeakMbps, fmt.Sprintf("not a finite number from 0 to %g (wire.MaxJobMbps)", float64(wire.MaxJobMbps)))
	}
	if !okFloat(j.AllocMbps) {
		return bad("alloc_mbps", j.AllocMbps, "not a finite non-negative number")
	}
	if j.Grown < 0 {
		return bad("grown", j.Grown, "negative")
	}
	for i, mn := range j.Nodes {
		f := fmt.Sprintf("nodes[%d].", i)
		if err := badPlace(bad, f, mn.Addr, mn.Weight); err != nil {
			return err
		}
		if r := wire.NodeState(mn.Role); r != 0 && r != wire.NodeJoining && r != wire.NodeDraining {
			return bad(f+"role", mn.Role, fmt.Sprintf("neither 0, %d (joining) nor %d (draining)", wire.NodeJoining, wire.NodeDraining))
		}
	}
	for i, l := range j.Lost {
		if err := badPlace(bad, fmt.Sprintf("lost[%d].", i), l.Addr, l.Weight); err != nil {
			return err
		}
	}
	for addr := range j.Undone {
		if why := AddrProblem(addr); why != "" {
			return bad("undone", fmt.Sprintf("%q", addr), why)
		}
	}
	return nil
}

// Check reports a field of the node's record out of range, as a
// *RecordError.
func (n *Node) Check() error {
	bad := func(field string, v any, why string) error {
		return &RecordError{Kind: "node", Key: n.Addr, Field: field, Value: v, Why: why}
	}
	if why := AddrProblem(n.Addr); why != "" {
		return bad("addr", fmt.Sprintf("%q", n.Addr), why)
	}
	if !n.Gone.IsZero() {
		return nil // a retired node: its address, time and why
	}
	// 0 is restored as active, as always.
	if s := wire.NodeState(n.State); s > wire.NodeDead {
		return bad("state", n.State, fmt.Sprintf("not a node state (%d active, %d draining, %d dead)",
			wire.NodeActive, wire.NodeDraining, wire.NodeDead))
	}
	for i, t := range n.Tiers {
		f := fmt.Sprintf("tiers[%d].", i)
		if !knownTier(t.Kind) {
			return bad(f+"kind", t.Kind, "not a known tier (1 dram, 2 nvme)")
		}
		if t.CapacityBytes < 0 || t.CapacityBytes > wire.MaxNodeBytes {
			return bad(f+"capacity_bytes", t.CapacityBytes, fmt.Sprintf("not from 0 to %d (wire.MaxNodeBytes)", int64(wire.MaxNodeBytes)))
		}
		if !okFloat(t.Mbps) || t.Mbps > wire.MaxNodeMbps {
			return bad(f+"mbps", t.Mbps, fmt.Sprintf("not a finite number from 0 to %g (wire.MaxNodeMbps)", float64(wire.MaxNodeMbps)))
		}
	}
	return nil
}

// badPlace checks a map's node or lost node (its fields prefixed f): an
// address a dial can use and a finite non-negative weight.
func badPlace(bad func(field string, v any, why string) error, f, addr string, weight float64) error {
	if why := AddrProblem(addr); why != "" {
		return bad(f+"addr", fmt.Sprintf("%q", addr), why)
	}
	if !okFloat(weight) {
		return bad(f+"weight", weight, "not a finite non-negative number")
	}
	return nil
}

func knownTier(t uint8) bool {
	return wire.Tier(t) == wire.TierDRAM || wire.Tier(t) == wire.TierNVMe
}

func okFloat(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) && f >= 0 }

// AddrProblem says what is wrong with a node address ("" when nothing): it
// must be host:port, within wire.MaxAddrLen, with a port a dial can use
// (a number 1 to 65535, or a service name). The controller refuses a node
// registering with another (RegisterNode), so no record it writes fails
// the check at its next start (a re-check registered 127.0.0.1:0 and
// 127.0.0.1:99999, and the restart was refused).
func AddrProblem(addr string) string {
	if addr == "" {
		return "empty"
	}
	if len(addr) > wire.MaxAddrLen {
		return fmt.Sprintf("%d bytes, over the bound of %d", len(addr), wire.MaxAddrLen)
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "not host:port"
	}
	if p, err := net.LookupPort("tcp", port); err != nil || p == 0 {
		return fmt.Sprintf("port %q is not a port from 1 to 65535", port)
	}
	return ""
}
