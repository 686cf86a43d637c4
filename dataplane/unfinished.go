package dataplane

import (
	"github.com/pocketstore/pocket/nvme"
	"github.com/pocketstore/pocket/wire"
)

// A put reserves its whole size in its tier when its header arrives, and
// its payload goes straight into that space as it comes (sinks.go): DRAM
// slab chunks, or an NVMe tier's staging buffers, which its reads need
// too. A client that announces large puts and sends their payloads slowly
// holds that memory meanwhile: netio's minimum pace (Config.MinSinkRate,
// after a 5 s grace) cuts a trickle, but a client that reconnects and
// announces again holds a put's size for each grace at almost no cost. So
// the bytes of one job's puts still arriving on a node are bounded in each
// tier (NodeConfig.MaxUnfinishedPerJob; by default a quarter of the DRAM
// tier, and a quarter of the NVMe tier's staging memory): past the bound a
// put is refused busy, and the memory the job's other puts hold stays
// theirs. In the DRAM tier the bound applies only once the tier would be
// more than half full: a job putting many large values at once into a
// roomy node goes at full speed (a new user's 16 parallel puts of 48 MiB
// into one node took 2 to 12 times as long under the bound), and a job
// holding puts open takes at most about half of the tier before it. An
// NVMe tier's staging memory does not report its use, so its bound always
// applies. A put that arrives with its whole payload in the header's read,
// or is the job's only unfinished one in its tier, is never refused: one
// put of any size the limits allow can always be made. The jobs a
// controller placed here are bounded; a node without one (standalone)
// serves anyone and bounds nothing.

var errUnfinished = &wire.Error{Code: wire.CodeBusy,
	Msg: "the job's puts still arriving on this node hold more than its bound (a quarter of the tier's memory by default); retry once they end"}

// unfinishedSlot is a tier's index in jobEntry.unfinished and
// Node.unfinishedCap.
func unfinishedSlot(t Tier) int {
	if t.Kind() == KindNVMe {
		return 1
	}
	return 0
}

// unfinishedCaps resolves cfg.MaxUnfinishedPerJob for each tier (0: none).
func unfinishedCaps(cfg NodeConfig) (caps [2]int64) {
	if cfg.MaxUnfinishedPerJob < 0 {
		return caps
	}
	for _, t := range []Tier{cfg.DRAM, cfg.NVMe} {
		switch {
		case t == nil:
		case cfg.MaxUnfinishedPerJob > 0:
			caps[unfinishedSlot(t)] = cfg.MaxUnfinishedPerJob
		default:
			caps[unfinishedSlot(t)] = max(1, putMemory(t)/4)
		}
	}
	return caps
}

// putMemory is the memory a tier's puts fill while their payloads arrive:
// an NVMe tier's staging regions when its buffer source has them, else
// the tier's capacity.
func putMemory(t Tier) int64 {
	if nv, ok := t.(*NVMe); ok {
		if r, ok := nv.bufs.(nvme.RegionSource); ok {
			var n int64
			for _, b := range r.Regions() {
				n += int64(len(b))
			}
			if n > 0 {
				return n
			}
		}
	}
	return t.Usage().Capacity
}

// holdUnfinished counts size bytes of a put to tier whose payload is
// still to come in e's unfinished puts and returns what it counted, or
// errUnfinished when they would pass the node's bound and e has other
// unfinished puts in that tier. A nil e (a job the node has no entry for)
// counts nothing.
func (n *Node) holdUnfinished(e *jobEntry, tier Tier, size int64) (int64, error) {
	i := unfinishedSlot(tier)
	if e == nil || n.unfinishedCap[i] == 0 {
		return 0, nil
	}
	if u := e.unfinished[i].Add(size); u > size && u > n.unfinishedCap[i] && crowded(tier, size) {
		e.unfinished[i].Add(-size)
		return 0, errUnfinished
	}
	return size, nil
}

// crowded reports whether a put of size more would leave tier more than
// half full; an NVMe tier always is (its staging memory's use is not
// known here).
func crowded(tier Tier, size int64) bool {
	if tier.Kind() == KindNVMe {
		return true
	}
	u := tier.Usage()
	return u.Used+size > u.Capacity/2
}

// releaseUnfinished uncounts what holdUnfinished counted.
func releaseUnfinished(e *jobEntry, tier Tier, held int64) {
	if held != 0 {
		e.unfinished[unfinishedSlot(tier)].Add(-held)
	}
}
