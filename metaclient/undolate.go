package metaclient

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// Registrations answered after their call ended
//
// A job registration whose context ends after the request was written
// fails with its outcome unknown: the controller may register the job
// after the caller gave up, and nobody holds its id or token to end it.
// A new user's trial cut 60 registrations at 0.8-2.3 ms: 3-4 per run left
// a live job holding 600 Mb/s with a token that never expired, which only
// the operator could end. So when such a call's connection is still whole
// (all of the request written, nothing of the answer read), the
// connection is handed to a client of its own (undoLate), which awaits the
// answer for up to Options.CallTimeout and deregisters the job it names.
// A connection that failed (reset, closed) is dropped as before: its
// answer cannot come, and the controller's outcome stays unknown.

// undoingError marks a registration's error whose answer is awaited in
// the background (OutcomeUnknownError.Undo).
type undoingError struct{ error }

func (e undoingError) Unwrap() error { return e.error }

// answerable reports whether the call that failed with err may still be
// answered on c's connection: its context ended (not the connection),
// after all of the request was written and before any of the answer was
// read.
func (c *Client) answerable(ctx context.Context, err error) bool {
	return c.conn != nil && !c.broken && c.wroteAll && !c.replied && ctx.Err() != nil &&
		(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.Is(err, os.ErrDeadlineExceeded))
}

// undoLate hands c's connection, whose registration's answer is due, to a
// client of its own that undoes the registration (undoRegistration); c's
// next call dials anew.
func (c *Client) undoLate() {
	bg := newOne(c.addr, c.opt)
	bg.conn, bg.r, bg.nonce, bg.hello, bg.id = c.conn, c.r, c.nonce, c.hello, c.id
	c.conn, c.r, c.nonce, c.hello = nil, nil, nil, false
	go bg.undoRegistration()
}

// undoRegistration reads the registration's answer on c's connection
// within Options.CallTimeout and deregisters the job it names, then
// closes c.
func (c *Client) undoRegistration() {
	defer c.Close()
	wait := c.opt.CallTimeout
	if err := c.conn.SetDeadline(time.Now().Add(wait)); err != nil {
		return
	}
	lim := wire.ControlLimits()
	h, meta, err := wire.ReadControlFrame(c.r, &lim, c.buf)
	if err != nil {
		c.opt.Logger.Warn("metaclient: a job registration's call ended before the controller answered, and no answer came: it may have registered the job (pocket status; pocket job end)",
			"controller", c.addr, "waited", wait, "err", err)
		return
	}
	var m wire.PlacementMap
	if h.Op != wire.OpRegisterJob.Reply() || h.ID != c.id || wire.ReplyError(&h, meta) != nil || m.Decode(meta) != nil {
		return // refused, or not its answer: no job to end
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := c.DeregisterJob(ctx, m.Job, m.Token); err != nil && !errors.Is(err, wire.ErrUnknownJob) {
		c.opt.Logger.Warn("metaclient: a job registered after its call ended could not be deregistered: the operator can end it (pocket job end)",
			"job", m.Job, "controller", c.addr, "err", err)
		return
	}
	c.opt.Logger.Info("metaclient: a job registered after its call ended was deregistered", "job", m.Job, "controller", c.addr)
}
