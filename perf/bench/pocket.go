package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/wire"
)

// PocketDialer returns a Dialer for one of our storage nodes at addr, using
// the data-plane connection of package client with the given job, token and
// epoch stamped on every request. Gets are checked to return valueSize bytes.
func PocketDialer(addr string, opts client.ConnOptions, valueSize int) Dialer {
	if opts.BufferSize == 0 {
		opts.BufferSize = bufSize
	}
	return func(ctx context.Context) (Conn, error) {
		c, err := client.DialConn(ctx, addr, opts)
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		return &pocketConn{c: c, valueSize: valueSize}, nil
	}
}

// pending is a request awaiting its reply.
type pending struct {
	id uint64
	op wire.Op
}

// pocketConn drives a node. Replies are matched to requests by id, so a
// node that answers out of order is measured correctly.
type pocketConn struct {
	c         *client.Conn
	sent      []pending // outstanding requests, at most the pipeline depth
	valueSize int
}

func (c *pocketConn) SendGet(key []byte) error {
	id, err := c.c.SendGet(key)
	c.sent = append(c.sent, pending{id, wire.OpGet})
	return err
}

func (c *pocketConn) SendPut(key, value []byte) error {
	id, err := c.c.SendPut(key, value, 0)
	c.sent = append(c.sent, pending{id, wire.OpPut})
	return err
}

func (c *pocketConn) Flush() error { return c.c.Flush() }

func (c *pocketConn) Recv() error {
	r, err := c.c.Recv()
	if err != nil {
		return fmt.Errorf("bench: pocket: %w", err)
	}
	i := c.find(r.ID)
	if i < 0 {
		return fmt.Errorf("bench: pocket: reply to request %d, which is not outstanding", r.ID)
	}
	p := c.sent[i]
	c.sent = slices.Delete(c.sent, i, i+1)
	return checkPocket(p.op, &r, c.valueSize)
}

// find returns the index of the outstanding request id, or -1. Replies
// usually come in order, so the search almost always stops at index 0.
func (c *pocketConn) find(id uint64) int {
	for i := range c.sent {
		if c.sent[i].id == id {
			return i
		}
	}
	return -1
}

// ErrNeedsJob is returned when a node refuses the run's job or token: every
// request would fail the same way, so the run stops and says what to pass.
var ErrNeedsJob = errors.New("a node started by `pocket up` or with --controller serves only a registered job's requests: " +
	"pass --job JOBID with the job's token (--token-file FILE or $POCKET_TOKEN; `pocket job register` prints both), " +
	"or --controller ADDR to register a fresh job and run through the SDK")

// checkPocket validates a reply: the right opcode, success, and for a get a
// value of the expected size. A refused job or token ends the run
// (ErrNeedsJob) instead of counting as a wrong response.
func checkPocket(op wire.Op, r *client.Response, size int) error {
	switch {
	case r.Op != op.Reply():
		return fmt.Errorf("bench: pocket: %v answered with %v", op, r.Op)
	case r.Code == wire.CodeBadToken || r.Code == wire.CodeUnknownJob:
		return fmt.Errorf("node refused the job: %w; %w", r.Err(), ErrNeedsJob)
	case r.Code != wire.CodeOK:
		return fmt.Errorf("%w: pocket %v: %w", ErrResponse, op, r.Err())
	case op == wire.OpGet && len(r.Payload) != size:
		return fmt.Errorf("%w: pocket get returned %d bytes, want %d", ErrResponse, len(r.Payload), size)
	}
	return nil
}

func (c *pocketConn) Close() error { return c.c.Close() }
