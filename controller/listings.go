package controller

import (
	"time"

	"github.com/pocketstore/pocket/wire"
)

// Listings and large replies.
//
// A status, a page of jobs (up to 1,000 entries, 3 MiB) or a profile is
// built under the controller's lock and encoded after it: the costliest
// requests it serves, and on a plain-TCP control plane any peer may send
// them. A hostile trial's 300 connections, each asking for a 673 KB page
// of jobs back to back, held the lock and both cores: every node's
// heartbeat timed out, their leases lapsed, and every job's values were
// refused for as long as it went on. So at most maxListings of them are
// built at once; a request waits up to listingWait for its turn, then is
// refused busy (the CLI says so; a retry gets it). Heartbeats, maps and
// registrations do not wait for a turn.
//
// A reply over wire.ReadGrowStep counts against Config.MaxLargeFrameBytes
// as a large request does (admitLarge: a connection that has not proved
// the node role within its quarter, so the nodes' large acks keep the
// rest) while it is written, and its buffers are let go once it is: the
// trial's 1,000 connections, each reading one page and then idling, held
// 2.97 GB of reply buffers.

// maxListings is how many listings (OpStatus, OpListJobs, OpJobProfile)
// are built at once.
const maxListings = 2

// listingWait is how long a listing waits for its turn.
const listingWait = 2 * time.Second

// listing reports whether op is a listing (see the top of the file).
func listing(op wire.Op) bool {
	return op == wire.OpStatus || op == wire.OpListJobs || op == wire.OpJobProfile
}

// awaitListing takes a listing's turn, waiting up to listingWait, and
// returns its release; CodeBusy when none came.
func (c *Controller) awaitListing() (func(), error) {
	t := time.NewTimer(listingWait)
	defer t.Stop()
	select {
	case c.listings <- struct{}{}:
		return func() { <-c.listings }, nil
	case <-t.C:
		return nil, wire.Errorf(wire.CodeBusy, "the controller is building %d other listings (status, job pages, profiles) and this one "+
			"waited %v for its turn: retry", maxListings, listingWait)
	}
}

// errReplyBusy answers a request whose reply of n bytes found no room
// under Config.MaxLargeFrameBytes.
func (c *Controller) errReplyBusy(op wire.Op, n int) error {
	return wire.Errorf(wire.CodeBusy, "the controller holds as many bytes of large requests and replies under way as it takes "+
		"(MaxLargeFrameBytes %d, a quarter of it for connections that have not proved the node role): "+
		"the %s reply of %d bytes waits for the next try", c.cfg.MaxLargeFrameBytes, op, n)
}
