package dataplane

import "sync"

// The byte quota's bound on one node (wire.JobEpoch.MaxBytes, admit's
// errOverNodeQuota) is on what the jobs of the job's owner hold on the
// node (Node.ownerBytes) and on the bytes of their puts admitted and not
// yet committed or dropped, together (quotaShares): a put is checked
// against both, and counts its size in the second, in one step. Checked
// against the committed bytes alone, puts under way all passed: a hostile
// trial's 120 concurrent puts of 4 MiB from one job stored 248 MiB on a
// 64 MiB quota, and 64 goroutines of the Go SDK 104 MiB.

// quotaShares counts, per owner key (owner.go), the bytes of its puts
// under a byte quota that are admitted and not yet committed or dropped.
// A share lives while a put holds it. All under mu, which also makes a
// check and its count one step.
type quotaShares struct {
	mu sync.Mutex
	m  map[string]*quotaShare
}

// quotaShare is one owner's puts under way: their bytes, and how many.
type quotaShare struct {
	key     string
	pending int64
	refs    int
}

// quotaHold is what holdQuota counted: size bytes in share s; zero when
// nothing.
type quotaHold struct {
	s    *quotaShare
	size int64
}

// holdQuota checks a put of size bytes of job (entry e) against the
// byte quota's bound on this node and counts it in its owner's puts
// under way, or returns errOverNodeQuota. A job without a bound (or
// entry) counts nothing. The put gives it back with releaseQuota once it
// is committed or dropped.
func (n *Node) holdQuota(e *jobEntry, job []byte, size int64) (quotaHold, error) {
	if e == nil {
		return quotaHold{}, nil
	}
	bound := e.maxBytes.Load()
	if bound <= 0 {
		return quotaHold{}, nil
	}
	var owner []byte
	if p := e.owner.Load(); p != nil {
		owner = *p
	}
	key := ownerKey(owner, string(job))
	q := &n.quota
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.m[key]
	pending := int64(0)
	if s != nil {
		pending = s.pending
	}
	if n.ownerBytes(job)+pending+size > bound {
		return quotaHold{}, errOverNodeQuota
	}
	if s == nil {
		if q.m == nil {
			q.m = make(map[string]*quotaShare)
		}
		s = &quotaShare{key: key}
		q.m[key] = s
	}
	s.pending += size
	s.refs++
	return quotaHold{s: s, size: size}, nil
}

// releaseQuota uncounts what holdQuota counted, forgetting a share with
// its last put.
func (n *Node) releaseQuota(h quotaHold) {
	if h.s == nil {
		return
	}
	q := &n.quota
	q.mu.Lock()
	defer q.mu.Unlock()
	h.s.pending -= h.size
	if h.s.refs--; h.s.refs == 0 && q.m[h.s.key] == h.s {
		delete(q.m, h.s.key)
	}
}
