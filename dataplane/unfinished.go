package dataplane

import (
	"sync"
	"sync/atomic"

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
// the bytes of one owner's puts still arriving on a node (its jobs'
// together: unfinishedShares) are bounded in each tier
// (NodeConfig.MaxUnfinishedPerJob; by default a quarter of the DRAM tier,
// and a quarter of the NVMe tier's staging memory): past the bound a put
// is refused busy, and the memory the owner's other puts hold stays
// theirs. In the DRAM tier the bound applies only once the tier would be
// more than half full: a job putting many large values at once into a
// roomy node goes at full speed (a new user's 16 parallel puts of 48 MiB
// into one node took 2 to 12 times as long under the bound), and a job
// holding puts open takes at most about half of the tier before it. An
// NVMe tier's staging memory does not report its use, so its bound always
// applies. A put that arrives with its whole payload in the header's read,
// or is its owner's only unfinished one in its tier, is never refused: one
// put of any size the limits allow can always be made. The jobs a
// controller placed here are bounded; a node without one (standalone)
// serves anyone and bounds nothing.

var errUnfinished = &wire.Error{Code: wire.CodeBusy,
	Msg: "the job's puts still arriving on this node, with those of its owner's other jobs, hold more than its bound (a quarter of the tier's memory by default); retry once they end"}

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

// unfinishedShares counts the bytes of unfinished puts per owner (the
// owner key, owner.go), so that one owner's jobs together hold at most
// the bound one job could: counted per job, a tenant with two jobs held
// twice it (before 2026-12-06). A share lives while a put holds it.
type unfinishedShares struct {
	mu sync.Mutex
	m  map[string]*unfinishedShare
}

// unfinishedShare is one owner's unfinished puts: their bytes by tier
// (unfinishedSlot), and how many puts hold it (refs). A share merged into
// another (rebind) names it in moved, and its puts give their bytes back
// there. All under unfinishedShares.mu.
type unfinishedShare struct {
	key   string
	bytes [2]atomic.Int64
	refs  int
	moved *unfinishedShare
}

// hold counts size bytes in tier slot i of key's share, one more put on
// it, unless the share would pass bound with other puts under way and
// full says the tier is crowded; then it counts nothing and returns nil.
func (u *unfinishedShares) hold(key string, i int, size, bound int64, full func() bool) *unfinishedShare {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.m == nil {
		u.m = map[string]*unfinishedShare{}
	}
	s := u.m[key]
	if s == nil {
		s = &unfinishedShare{key: key}
		u.m[key] = s
	}
	if b := s.bytes[i].Load() + size; b > size && b > bound && full() {
		if s.refs == 0 {
			delete(u.m, key)
		}
		return nil
	}
	s.bytes[i].Add(size)
	s.refs++
	return s
}

// release gives back what hold counted on s, to the share s was merged
// into if it was, forgetting a share with its last put.
func (u *unfinishedShares) release(s *unfinishedShare, i int, size int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for s.moved != nil {
		s = s.moved
	}
	s.bytes[i].Add(-size)
	if s.refs--; s.refs == 0 && u.m[s.key] == s {
		delete(u.m, s.key)
	}
}

// rebind merges the share of key from into the share of key to: a job
// whose owner the table named after its first puts began (counted under
// its job key) has them counted with its owner's others from now on, and
// they give their bytes back there. Before, they stayed under the job
// key, a share of its own: a Python test's 40 MiB announced on each node
// right after the registration left the job's next puts unrefused.
func (u *unfinishedShares) rebind(from, to string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	old := u.m[from]
	if old == nil || from == to {
		return
	}
	dst := u.m[to]
	if dst == nil {
		dst = &unfinishedShare{key: to}
		u.m[to] = dst
	}
	for i := range old.bytes {
		dst.bytes[i].Add(old.bytes[i].Load())
	}
	dst.refs += old.refs
	old.moved = dst
	delete(u.m, from)
}

// held is the bytes of key's unfinished puts in tier slot i.
func (u *unfinishedShares) held(key string, i int) int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	if s := u.m[key]; s != nil {
		return s.bytes[i].Load()
	}
	return 0
}

// unfinishedHold is what holdUnfinished counted: size bytes in tier slot
// i of share s; zero when nothing.
type unfinishedHold struct {
	s    *unfinishedShare
	i    int
	size int64
}

// holdUnfinished counts size bytes of a put of job (entry e) to tier
// whose payload is still to come in its owner's unfinished puts
// (ownerKey) and returns what it counted, or errUnfinished when they
// would pass the node's bound and the owner has other unfinished puts in
// that tier. A nil e (a job the node has no entry for) counts nothing.
// The put gives it back with releaseUnfinished, to the share it was
// counted in, or the one that share was merged into when the table named
// the job's owner (rebind).
func (n *Node) holdUnfinished(e *jobEntry, job []byte, tier Tier, size int64) (unfinishedHold, error) {
	i := unfinishedSlot(tier)
	if e == nil || n.unfinishedCap[i] == 0 {
		return unfinishedHold{}, nil
	}
	var owner []byte
	if p := e.owner.Load(); p != nil {
		owner = *p
	}
	s := n.unfinished.hold(ownerKey(owner, string(job)), i, size, n.unfinishedCap[i], func() bool { return crowded(tier, size) })
	if s == nil {
		return unfinishedHold{}, errUnfinished
	}
	return unfinishedHold{s: s, i: i, size: size}, nil
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
func (n *Node) releaseUnfinished(h unfinishedHold) {
	if h.s != nil {
		n.unfinished.release(h.s, h.i, h.size)
	}
}
