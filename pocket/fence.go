package pocket

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pocketstore/pocket/client"
)

// Fences: a call given up does not overtake the next one
//
// A put or delete whose caller's context ends goes on to its end on a
// context of its own (finish: up to settle after the caller's), so that its cleanup (the
// replaced object's chunks) is done. Once the caller has gone it starts
// nothing new (givenUp): no attempt (one waiting for a map is not sent at
// all), no pass or page of a recursive delete, no request refused busy or
// lost unsent sent again; an attempt under way (a key whose owner
// changes: its old owner, then its live owner) sends each of its steps at
// most once and stops at the first cut short, leaving what an order of
// the calls explains; cleanup (chunk drops, the old owner's older copy)
// runs on contexts of its own. Before, the caller's next put or
// delete of the same key could complete first and be overwritten by the
// call it gave up: a hostile trial saw an acknowledged put replaced by an
// earlier, failed one up to 6 ms after its acknowledgement, and an
// acknowledged put read "not found" after an earlier cancelled delete.
//
// So a call given up (a put, a delete, a get that deletes what it reads,
// a directory marker) leaves a fence on its key (or, for a recursive
// delete, its prefix) until it ends, and the next such call of that key on
// the same Job waits for the fence first (await); a recursive delete waits
// for the fences of every key under its prefix.
// Waiting ends with the caller's context, before anything is sent, so it
// changes nothing. Calls through other Jobs, or other processes, are not
// ordered: they are concurrent with the call given up, whose outcome is
// unknown until it ends. A Job with no fence pays one atomic load per call.

// fences are a Job's calls given up and still running.
type fences struct {
	n  atomic.Int32 // len(on), read without mu
	mu sync.Mutex
	on map[*fence]struct{}
}

// fence is one call that runs on after its caller: key is its key, or the
// prefix of a recursive delete (prefix); end closes when the call ends.
type fence struct {
	key    string
	prefix bool
	end    chan struct{}
}

// hold puts up a fence on key (prefix: on the keys under it) until the
// call whose result done carries has ended.
func (fs *fences) hold(key string, prefix bool, done <-chan error) {
	f := &fence{key: key, prefix: prefix, end: make(chan struct{})}
	fs.mu.Lock()
	if fs.on == nil {
		fs.on = map[*fence]struct{}{}
	}
	fs.on[f] = struct{}{}
	fs.n.Store(int32(len(fs.on)))
	fs.mu.Unlock()
	go func() {
		<-done
		fs.mu.Lock()
		delete(fs.on, f)
		fs.n.Store(int32(len(fs.on)))
		fs.mu.Unlock()
		close(f.end)
	}()
}

// A request failed on its node's silence
//
// A put or delete whose connection failed on silence (Config.Silence: the
// node sent nothing while the request, written whole, waited) may still
// be executed when the node resumes: a frozen node reads it from its
// socket then. Its node's lease bounds that in a cluster: a node that has
// not heard from its controller for three quarters of its lease (about
// 25 s by default, dataplane/lease.go) refuses its jobs' requests until it
// has. Config.Silence's default, 30 s, is past that; a smaller one is not,
// so the request's key (or prefix) is fenced until the node has been
// silent for silenceFenceBound in all (fenceSilent): the Job's next put or
// delete of it waits, or ends unsent with its caller's context. Before, a
// hostile trial with Silence 1 s saw a put failed on silence land after
// the next, acknowledged, put of its key (5 of 12 rounds). A node without
// a controller has no lease: the fence only delays the next write there.

// silenceFenceBound is how long a node has been silent, in all, when
// fenceSilent's fence ends: client.DefaultSilence, past a node's lease.
var silenceFenceBound = client.DefaultSilence

// fenceSilent fences key (prefix: the keys under it) when err, a put's or
// delete's outcome, is its connection's failure on silence shorter than
// silenceFenceBound, for the rest of that bound.
func (j *Job) fenceSilent(key string, prefix bool, err error) {
	s, ok := client.FailedOnSilence(err)
	if !ok || s >= silenceFenceBound {
		return
	}
	done := make(chan error, 1)
	time.AfterFunc(silenceFenceBound-s, func() { done <- nil })
	j.fences.hold(key, prefix, done)
}

// await waits until no fence covers key (prefix: no fence covers a key
// under it), or returns ctx's error.
func (fs *fences) await(ctx context.Context, key string, prefix bool) error {
	if fs.n.Load() == 0 {
		return nil
	}
	fs.mu.Lock()
	var ends []chan struct{}
	for f := range fs.on {
		if f.covers(key, prefix) {
			ends = append(ends, f.end)
		}
	}
	fs.mu.Unlock()
	for _, end := range ends {
		select {
		case <-end:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// covers reports whether f's call may change key (prefix: a key under
// key).
func (f *fence) covers(key string, prefix bool) bool {
	switch {
	case f.prefix && prefix:
		return strings.HasPrefix(key, f.key) || strings.HasPrefix(f.key, key)
	case f.prefix:
		return strings.HasPrefix(key, f.key)
	case prefix:
		return strings.HasPrefix(f.key, key)
	}
	return f.key == key
}

// finish runs f, a put or delete of key (prefix: of every key under it)
// whose reply the SDK must see to clean up after it (a chunked object
// replaced or removed, whose chunks must then be dropped), to its end on a
// context that outlives ctx by settle at most (outlive). The caller still returns as soon
// as ctx ends, with ctx's error; f then completes, and cleans up, on its
// own, behind a fence on key that the Job's next put or delete of it
// waits for.
func (j *Job) finish(ctx context.Context, key string, prefix bool, f func(context.Context) error) error {
	if ctx.Done() == nil {
		return f(ctx) // cannot be cancelled: no goroutine needed
	}
	sctx, cancel := outlive(ctx)
	done := make(chan error, 1)
	go func() {
		defer cancel()
		done <- f(sctx)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		j.fences.hold(key, prefix, done) // only a call given up pays for its fence
		return ctx.Err()
	}
}
