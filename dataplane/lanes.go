package dataplane

import (
	"sync"
	"time"
)

// The node has two scan lanes (lane.go), each one goroutine with its own
// queue and turns: an owner's requests go to the quick lane unless one of
// its requests ran longer than laneSlowRun within the last laneSlowFor;
// then they go to the slow lane. A turn is one whole request: on one lane,
// a hostile trial's first-page listings over 3 million keys (1 to 1.5 s
// each) held another tenant's listing of 10 keys 1.0-1.5 s p50. Now such
// an owner holds the quick lane for one request and then only the slow
// one, where only other slow owners wait behind it. Listings take at most
// two cores, one a lane.
const (
	laneSlowRun    = 20 * time.Millisecond
	laneSlowFor    = 30 * time.Second
	laneSlowOwners = 4096 // owners remembered as slow at once
)

// lanes are the node's quick and slow scan lanes, and the owners sent to
// the slow one with when they go back (under mu).
type lanes struct {
	quick, slow *scanLane
	now         func() time.Time

	mu        sync.Mutex
	slowUntil map[string]time.Time
}

// startLanes starts both lanes' goroutines; stopWorkers ends them.
func (n *Node) startLanes() {
	n.lanes = &lanes{quick: newScanLane(), slow: newScanLane(), now: time.Now, slowUntil: map[string]time.Time{}}
	for _, l := range []*scanLane{n.lanes.quick, n.lanes.slow} {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.lanes.serve(l)
		}()
	}
}

// serve runs l's requests until it closes, noting the owners whose
// requests ran long.
func (s *lanes) serve(l *scanLane) {
	for {
		f, owner, ok := l.next()
		if !ok {
			return
		}
		start := s.now()
		f(true)
		if end := s.now(); end.Sub(start) >= laneSlowRun {
			s.markSlow(owner, end)
			if l == s.quick {
				s.moveToSlow(owner)
			}
		}
	}
}

// submit queues f for owner on its lane (scanLane.submit).
func (s *lanes) submit(owner string, f laneWork) error { return s.pick(owner).submit(owner, f) }

// pick is the lane owner's requests go to now.
func (s *lanes) pick(owner string) *scanLane {
	s.mu.Lock()
	defer s.mu.Unlock()
	if until, ok := s.slowUntil[owner]; ok {
		if s.now().Before(until) {
			return s.slow
		}
		delete(s.slowUntil, owner)
	}
	return s.quick
}

// markSlow sends owner's requests to the slow lane for laneSlowFor from
// now. Past laneSlowOwners, the expired go first, then an arbitrary one.
func (s *lanes) markSlow(owner string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.slowUntil[owner]; !ok && len(s.slowUntil) >= laneSlowOwners {
		for o, until := range s.slowUntil {
			if !now.Before(until) {
				delete(s.slowUntil, o)
			}
		}
		for o := range s.slowUntil {
			if len(s.slowUntil) < laneSlowOwners {
				break
			}
			delete(s.slowUntil, o)
		}
	}
	s.slowUntil[owner] = now.Add(laneSlowFor)
}

// moveToSlow moves the requests of owner waiting on the quick lane to the
// slow one, behind those waiting there; those past the slow lane's bounds
// are answered busy. Before, requests queued before an owner's first long
// one ended stayed on the quick lane: a re-check's tenant sent 16 first
// pages at once every 31 s (its mark lapsed), and each burst held the
// quick lane about 7 s.
func (s *lanes) moveToSlow(owner string) {
	for _, f := range s.quick.take(owner) {
		if s.slow.submit(owner, f) != nil {
			f(false)
		}
	}
}

// rekey moves what waits, and the slow mark, from owner key from to to
// (scanLane.rekey).
func (s *lanes) rekey(from, to string) {
	s.quick.rekey(from, to)
	s.slow.rekey(from, to)
	s.mu.Lock()
	defer s.mu.Unlock()
	if until, ok := s.slowUntil[from]; ok && from != to {
		delete(s.slowUntil, from)
		if until.After(s.slowUntil[to]) {
			s.slowUntil[to] = until
		}
	}
}

// close closes both lanes.
func (s *lanes) close() {
	s.quick.close()
	s.slow.close()
}
