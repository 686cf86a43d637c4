package token

import (
	"crypto/subtle"
	"sync"
	"sync/atomic"
)

// Verifier checks job tokens like Verify, remembering each job's valid
// token so that a node's per-request check is a map lookup and a 33-byte
// constant-time compare instead of two SHA-256 runs. Only tokens that
// passed the full check are remembered, so wrong tokens cannot fill it.
//
// Reads take no lock: the map is replaced, never changed, when a job is
// added (once per job per node), so a Verifier is safe for concurrent use.
type Verifier struct {
	secret []byte
	max    int
	mu     sync.Mutex // serializes writers
	known  atomic.Pointer[map[string][Len]byte]
}

// NewVerifier returns a Verifier remembering up to max jobs (0: 4096); when
// full it starts over, which costs only a recomputation per job.
func NewVerifier(secret []byte, max int) *Verifier {
	if max <= 0 {
		max = 4096
	}
	v := &Verifier{secret: append([]byte(nil), secret...), max: max}
	m := map[string][Len]byte{}
	v.known.Store(&m)
	return v
}

// Verify reports whether tok is a valid job token for job. A remembered
// job costs no allocation; the first check of a job allocates its entry.
func (v *Verifier) Verify(job, tok []byte) bool {
	if len(tok) != Len {
		return false
	}
	if want, ok := (*v.known.Load())[string(job)]; ok {
		return subtle.ConstantTimeCompare(want[:], tok) == 1
	}
	if !Check(v.secret, KindJob, job, tok) {
		return false
	}
	v.remember(string(job), tok)
	return true
}

// remember adds a verified token with copy-on-write.
func (v *Verifier) remember(job string, tok []byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	old := *v.known.Load()
	if _, ok := old[job]; ok {
		return
	}
	next := make(map[string][Len]byte, len(old)+1)
	if len(old) < v.max {
		for k, t := range old {
			next[k] = t
		}
	}
	var t [Len]byte
	copy(t[:], tok)
	next[job] = t
	v.known.Store(&next)
}

// Forget drops a job's remembered token (after the job is dropped); the
// token stays valid and would be learned again on its next use.
func (v *Verifier) Forget(job []byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	old := *v.known.Load()
	if _, ok := old[string(job)]; !ok {
		return
	}
	next := make(map[string][Len]byte, len(old))
	for k, t := range old {
		if k != string(job) {
			next[k] = t
		}
	}
	v.known.Store(&next)
}
