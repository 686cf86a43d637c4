package client

import (
	"fmt"
	"time"

	"github.com/pocketstore/pocket/internal/sockpeek"
)

// A silent node
//
// A node that stops without closing its connections (frozen by SIGSTOP, a
// stalled VM, cut off by a partition) is never refused: a call to it waits
// for a reply that does not come, for as long as its context allows, and
// the CLI's data commands have none (a get of a key on a frozen node waited
// until interrupted, also after the controller had marked the node dead).
// So each connection is watched (watch, a goroutine per connection, every
// eighth of Options.Silence, so a call fails within 1.25 times it): while a caller waits for a reply on it, a
// frame is being written to it, or replies are owed to nobody (calls given
// up, read by the drainer), something must move, a byte read or the
// socket's unsent bytes changing (the node acknowledging what was written,
// sockpeek.Unsent); after Silence with nothing moving the connection fails,
// and every call on it, with CodeUnavailable naming the silence. (A
// connection with only given-up calls on a frozen node kept its drainer,
// and now its watch, until Client.Close: a hostile trial left 2 goroutines
// and a descriptor per connection.)
//
// A call failed so has an unknown outcome: the node may hold its frame
// and execute it when it resumes. Against a node of a cluster the default
// bounds that: a node that has not heard from its controller for three
// quarters of its lease (about 25 s by default, dataplane/lease.go)
// refuses requests until it has, and by then the controller has marked a
// node silent for 30 s dead. A smaller Silence, or a node without a
// controller, leaves the outcome open: a hostile trial with Silence 1 s
// and a standalone node saw a put failed on silence land after the next,
// acknowledged, put of its key when the node resumed (5 of 12 rounds).
// Such an error is FailedOnSilence, and the SDK fences the key until the
// node has been silent for 30 s in all (pocket/fence.go). The SDK
// then fetches the job's map and answers as for any node that cannot be
// reached: the node's dead-node error once the controller marks it dead,
// or the same request again. A write whose unsent bytes cannot be read
// (no descriptor) counts as moving.
//
// A node answers every request within seconds, even when it refuses it
// (busy, no space): the longest a healthy node keeps a reply back is a
// streamed get's later chunk waiting up to 10 s for a staging buffer
// (dataplane/nvme_stream.go), well within the default. A reply being read
// moves, whatever its size.

// DefaultSilence is Options.Silence's default: 30 s, three times the
// longest a healthy node keeps a reply back, and about when the
// controller, by default, has marked a node that stopped heartbeating
// dead (its --dead-after plus the grace).
const DefaultSilence = 30 * time.Second

// errSilent fails a connection on which nothing moved for silence.
type errSilent struct {
	silence time.Duration
	writing bool
}

func (e errSilent) Error() string {
	what := "a request waited for its reply (the node is frozen, stalled or cut off; whether it executed the request is unknown)"
	if e.writing {
		what = "a request was being written (the node is frozen, stalled or cut off)"
	}
	return fmt.Sprintf("nothing received for %v while %s", e.silence, what)
}

// watch fails mc once nothing has moved on it for silence while it owes a
// caller something (see the top of this file); it returns when mc fails.
func (mc *muxConn) watch(silence time.Duration) {
	period := silence / 8
	tick := time.NewTicker(period)
	defer tick.Stop()
	q := quiet{period: period, silence: silence, heard: mc.heard.Load(), unsent: -1, since: time.Now()}
	q.last = q.since
	for {
		select {
		case <-mc.gone:
			return
		case <-tick.C:
		}
		h := mc.heard.Load()
		writing := len(mc.wsem) > 0
		mc.mu.Lock()
		owed := mc.waiting > 0 || writing || mc.orphans > 0
		mc.mu.Unlock()
		out, known := -1, false
		if owed {
			out, known = sockpeek.Unsent(mc.nc)
		}
		if q.silent(time.Now(), h, owed, writing, out, known) {
			mc.fail(errSilent{silence: silence, writing: writing})
			return
		}
	}
}

// quiet is what watch knows of a connection between its looks, a period
// apart: what was heard and left unsent at the last, when it last saw
// something move, and when it last looked.
type quiet struct {
	period, silence time.Duration
	heard           uint64
	unsent          int
	since, last     time.Time
}

// silent takes a look at now: h is the connection's count of bytes
// heard, owed whether a caller is owed something, writing whether a frame
// is being written, out the socket's unsent bytes (known: readable). It
// reports whether nothing has moved for silence while something was owed.
// A look a whole period late or more comes after time this process did
// not run (stopped, or not scheduled: a serverless function's sandbox
// frozen between invocations), in which the node's replies wait unread in
// its socket: that time is not counted as the node's silence. Before, a
// client stopped for longer than Silence failed its calls in flight at
// its first look, their replies unread.
func (q *quiet) silent(now time.Time, h uint64, owed, writing bool, out int, known bool) bool {
	if late := now.Sub(q.last) - q.period; late >= q.period {
		q.since = q.since.Add(late)
	}
	q.last = now
	// Bytes written and not yet taken by the node falling is
	// movement whether or not a frame is being written: a frame
	// that fits the socket's buffer (up to 4 MiB) is done writing
	// long before a slow link has carried it (a hostile trial
	// failed a 6 MiB put over a 400 KB/s link that way).
	moved := h != q.heard || known && q.unsent >= 0 && out != q.unsent || writing && (!known || out == 0)
	q.heard, q.unsent = h, out
	if !owed || moved {
		q.since = now
		return false
	}
	return now.Sub(q.since) >= q.silence
}
