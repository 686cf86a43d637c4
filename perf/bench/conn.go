package bench

import (
	"context"
	"errors"
	"io"
)

// Conn is one connection to the store under test, driven by one goroutine
// of the load generator. Every driver (our wire protocol, RESP for Redis)
// implements it, so both stores are measured by the same generator.
//
// Send* only buffer; Flush writes everything buffered in one go; Recv reads
// the next response, in the order the requests were sent as far as the
// caller is concerned, and checks it: a put must be acknowledged with
// success, a get must return a value of the size the driver was built for.
// Implementations must not allocate per request in steady state.
type Conn interface {
	SendGet(key []byte) error
	SendPut(key, value []byte) error
	Flush() error
	// Recv returns an error wrapping ErrResponse when the response was
	// read whole but is wrong (an error status, a missing key, a value of
	// the wrong size), or ErrRefused when the store refused the request
	// and the driver adapted (a stale epoch): the stream is still in step
	// and the generator counts it and goes on. Any other error means the
	// connection is unusable.
	Recv() error
	Close() error
}

// Deleter is a Conn that can delete keys: a run deletes the keys it wrote
// with it at its end (Cleanup). SendDelete only buffers, like SendGet;
// Recv then returns nil when the key was deleted or was not there, an
// error wrapping ErrResponse when the store refused.
type Deleter interface {
	SendDelete(key []byte) error
}

// readValue reads a reply's n-byte value into *buf, grown as needed and
// reused, as every driver does: a client uses the values it gets, so each
// store's values are copied into the generator's memory the same way.
// (Discarding them through a reader's 64 KiB buffer, which stays in cache,
// once made memcached's 1 MiB GETs look 1.5-2x cheaper to the generator
// than ours, which the client reads into a 1 MiB buffer like any caller.)
func readValue(r io.Reader, buf *[]byte, n int) error {
	if cap(*buf) < n {
		*buf = make([]byte, n)
	}
	_, err := io.ReadFull(r, (*buf)[:n])
	return err
}

// Dialer opens one connection to the store under test.
type Dialer func(ctx context.Context) (Conn, error)

// ErrResponse marks a well-formed but wrong response.
var ErrResponse = errors.New("bench: unexpected response")

// ErrRefused marks a request the store refused for a reason the driver has
// already acted on, so the next requests may succeed: a node's stale-epoch
// refusal, whose epoch the node driver adopts (PocketDialer). The
// generator counts refusals apart from wrong responses (Stats.Refused).
var ErrRefused = errors.New("bench: refused")

// ErrNotAtNode marks a cleanup's delete of a key the run wrote that the
// node no longer holds. With --addr NODE that is most often a change of
// the job's map during the run: a new user's trial had the autoscaler
// move 114 of a get run's 256 keys to another node, and the cleanup
// counted their "not found" as deleted, reporting "deleted the 256
// key(s) the run wrote" while `pocket ls` still listed the 114.
var ErrNotAtNode = errors.New("bench: not found at the node")

// ErrStalled ends a run (or its preload) in which no request of a
// connection succeeded for Config.StallLimit: every reply was a wrong
// response or a refusal, so the rest of the run would only repeat them.
var ErrStalled = errors.New("bench: no request succeeded")

// opQueue remembers what a connection sent and awaits, so Recv can check
// each response against its request. It reuses its storage: once grown to
// the pipeline depth it never allocates.
type opQueue[T any] struct {
	items []T
	head  int
}

func (q *opQueue[T]) push(v T) { q.items = append(q.items, v) }

// pop removes the oldest entry; ok is false when the queue is empty.
func (q *opQueue[T]) pop() (v T, ok bool) {
	if q.head == len(q.items) {
		return v, false
	}
	v = q.items[q.head]
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	}
	return v, true
}
