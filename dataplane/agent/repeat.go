package agent

import (
	"sync"
	"time"
)

// repeatEvery is how often a warning that a retry loop repeats at its
// cadence (a move retried every moveRetry) is logged for one job: the
// first, then at most one per repeatEvery, which counts the ones held
// back. Before, a move that could not finish logged two lines a job every
// half second (a hostile trial: 418 warnings in 110 s; a new user's
// restart: 118 in 35 s).
const repeatEvery = 30 * time.Second

// repeats rate-limits repeated log lines by key (repeatEvery).
type repeats struct {
	mu   sync.Mutex
	seen map[string]repeat
}

type repeat struct {
	at   time.Time // when the key's line was last logged
	held int       // lines held back since
}

// due reports whether key's line may be logged at now, and how many were
// held back since the last one logged.
func (r *repeats) due(key string, now time.Time) (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[string]repeat{}
	}
	if len(r.seen) > 1024 { // jobs that ended, or moved: forget the quiet ones
		for k, e := range r.seen {
			if now.Sub(e.at) >= repeatEvery {
				delete(r.seen, k)
			}
		}
	}
	e, ok := r.seen[key]
	if ok && now.Sub(e.at) < repeatEvery {
		e.held++
		r.seen[key] = e
		return false, 0
	}
	r.seen[key] = repeat{at: now}
	return true, e.held
}
