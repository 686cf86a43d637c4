package bench

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/wire"
)

// PocketDialer returns a Dialer for one of our storage nodes at addr, using
// the data-plane connection of package client with the given job, token and
// epoch stamped on every request. Gets are checked to return valueSize bytes.
//
// The epoch is shared by the dialer's connections and follows the node: a
// request refused with wire.CodeStaleEpoch makes every connection stamp
// the node's current epoch (wire.Error.Epoch) from then on, and counts as
// a refusal (ErrRefused), not as a wrong response. So a run against one
// node of a registered job goes on when the job's map changes; it does not
// follow the map to other nodes (the SDK, SDKDialer, does).
func PocketDialer(addr string, opts client.ConnOptions, valueSize int) Dialer {
	if opts.BufferSize == 0 {
		opts.BufferSize = bufSize
	}
	epoch := new(atomic.Uint64)
	epoch.Store(opts.Epoch)
	return func(ctx context.Context) (Conn, error) {
		c, err := client.DialConn(ctx, addr, opts)
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		return newPocketConn(c, opts, epoch, valueSize), nil
	}
}

// pending is a request awaiting its reply, or whose reply came before
// those of earlier requests (done, with its verdict in err).
type pending struct {
	id    uint64
	op    wire.Op
	epoch uint64 // the map epoch stamped on the request
	done  bool
	err   error
}

// pocketConn drives a node. Replies are matched to requests by id, and
// Recv hands their verdicts back in the order the requests were sent
// (Conn), so a node that answers out of order is measured correctly and
// the caller knows which request each verdict is for (the put of which
// key the store acknowledged).
type pocketConn struct {
	c          *client.Conn
	job, token []byte
	tier       uint16         // the header flag of the node tier requests go to
	epoch      *atomic.Uint64 // the map epoch stamped on requests, shared by the dialer's connections
	sent       []pending      // requests sent, oldest first; those from head on are outstanding
	head       int            // index in sent of the oldest outstanding request
	valueSize  int
}

func newPocketConn(c *client.Conn, opts client.ConnOptions, epoch *atomic.Uint64, valueSize int) *pocketConn {
	pc := &pocketConn{c: c, job: opts.Job, token: opts.Token, epoch: epoch, valueSize: valueSize}
	if opts.NVMe {
		pc.tier = wire.FlagTierNVMe
	}
	return pc
}

func (c *pocketConn) send(op wire.Op, key, value []byte) error {
	req := wire.Request{Job: c.job, Key: key, Token: c.token, Epoch: c.epoch.Load()}
	id, err := c.c.Send(op, c.tier, &req, value)
	c.sent = append(c.sent, pending{id: id, op: op, epoch: req.Epoch})
	return err
}

func (c *pocketConn) SendGet(key []byte) error { return c.send(wire.OpGet, key, nil) }

func (c *pocketConn) SendPut(key, value []byte) error { return c.send(wire.OpPut, key, value) }

// SendDelete implements Deleter.
func (c *pocketConn) SendDelete(key []byte) error { return c.send(wire.OpDelete, key, nil) }

func (c *pocketConn) Flush() error { return c.c.Flush() }

// Recv returns the verdict on the oldest outstanding request, reading
// replies until its own has come; verdicts on later requests whose
// replies came first are kept for their turn.
func (c *pocketConn) Recv() error {
	if c.head == len(c.sent) {
		return errors.New("bench: pocket: Recv with no request outstanding")
	}
	for !c.sent[c.head].done {
		if err := c.recvOne(); err != nil {
			return err
		}
	}
	err := c.sent[c.head].err
	// Taken off by moving head, not by shifting the rest down; the slice
	// is reused from its start once every request is answered.
	if c.head++; c.head == len(c.sent) {
		c.sent, c.head = c.sent[:0], 0
	}
	return err
}

// recvOne reads one reply and records its verdict on its request. It
// returns an error only when the stream is unusable.
func (c *pocketConn) recvOne() error {
	r, err := c.c.Recv()
	if err != nil {
		return fmt.Errorf("bench: pocket: %w", err)
	}
	i := c.find(r.ID)
	if i < 0 {
		return fmt.Errorf("bench: pocket: reply to request %d, which is not outstanding", r.ID)
	}
	p := &c.sent[i]
	p.done = true
	if r.Code == wire.CodeStaleEpoch {
		p.err = c.adopt(p.op, p.epoch, &r)
	} else {
		p.err = checkPocket(p.op, &r, c.valueSize)
	}
	return nil
}

// adopt takes the node's current epoch from a stale-epoch refusal for
// every connection of the dialer (never going back to an older one) and
// returns the refusal, wrapping ErrRefused. A refusal naming the very
// epoch the request carried (sent) is the node out of the job's map
// (dataplane's checkEpoch: the one stale-epoch refusal at the node's own
// epoch): no epoch to adopt changes it, and it is returned as ErrNotInMap.
func (c *pocketConn) adopt(op wire.Op, sent uint64, r *client.Response) error {
	err := r.Err()
	var we *wire.Error
	if !errors.As(err, &we) || we.Epoch == 0 {
		return fmt.Errorf("%w: pocket %v: %w (the node named no epoch to adopt)", ErrResponse, op, err)
	}
	if we.Epoch == sent {
		return fmt.Errorf("pocket %v at the node's own epoch %d: %w: %w", op, sent, err, ErrNotInMap)
	}
	for {
		cur := c.epoch.Load()
		if cur >= we.Epoch || c.epoch.CompareAndSwap(cur, we.Epoch) {
			break
		}
	}
	return fmt.Errorf("%w: pocket %v: %w; adopted the node's epoch %d", ErrRefused, op, err, we.Epoch)
}

// find returns the index in sent of the outstanding request id awaiting
// its reply, or -1. Replies usually come in order, so the search almost
// always stops at head.
func (c *pocketConn) find(id uint64) int {
	for i := c.head; i < len(c.sent); i++ {
		if c.sent[i].id == id && !c.sent[i].done {
			return i
		}
	}
	return -1
}

// ErrNeedsJob is returned when a node refuses the run's job or token: every
// request would fail the same way, so the run stops and says what to pass.
var ErrNeedsJob = errors.New("a node started by `pocket up` or with --controller serves only a registered job's requests: " +
	"pass --job JOBID with the job's token (--token-file FILE or $POCKET_TOKEN; `pocket job register` prints both) " +
	"and --controller ADDR to drive that job through the SDK (following its map) or --addr NODE for one node of its map, " +
	"or --controller ADDR alone to register a fresh job")

// ErrNotInMap is returned when a node refuses the run's requests at its
// own map epoch of the job (wire.CodeStaleEpoch naming the epoch the
// request carried): the node is not in the job's placement map, and no
// epoch the run could adopt puts it there, so the run stops at once.
var ErrNotInMap = errors.New("no epoch the run could adopt changes that: --addr NODE measures a node of the job's map; " +
	"give one its current map names (`pocket status --json` lists them under jobs[].nodes; the list `pocket job register --json` printed " +
	"is stale once the map changes), or --controller ADDR to drive the job through the SDK over its map")

// ErrWrongTier is returned when a node refuses the run's tier: it has no
// such tier, or the job was placed on the other (its puts go there): every
// request would be refused the same way, so the run stops. Before, a put
// run of a job placed on NVMe with the default --tier dram counted 455,976
// refusals in 15 s (a new user's trial).
var ErrWrongTier = errors.New("pass --tier with the job's tier (pocket job register and pocket status --json name it) and one the node has")

// needsJob reports whether a reply code refuses the job itself (its id or
// token), which no retry changes.
func needsJob(c wire.Code) bool {
	return c == wire.CodeBadToken || c == wire.CodeUnknownJob || c == wire.CodeRevoked
}

// checkPocket validates a reply: the right opcode, success, and for a get a
// value of the expected size. A refused job or token ends the run
// (ErrNeedsJob) instead of counting as a wrong response.
func checkPocket(op wire.Op, r *client.Response, size int) error {
	switch {
	case r.Op != op.Reply():
		return fmt.Errorf("bench: pocket: %v answered with %v", op, r.Op)
	case needsJob(r.Code):
		return fmt.Errorf("node refused the job: %w; %w", r.Err(), ErrNeedsJob)
	case r.Code == wire.CodeUnsupported:
		return fmt.Errorf("node refused the run's tier: %w; %w", r.Err(), ErrWrongTier)
	case op == wire.OpDelete && r.Code == wire.CodeNotFound:
		// Not deleted: a key the run wrote to this node is no longer
		// there, most often because the job's map changed and the
		// controller moved it to another node. Counted apart (ErrNotAtNode)
		// so the report does not claim it deleted the key.
		return fmt.Errorf("%w: pocket delete: %w", ErrNotAtNode, r.Err())
	case r.Code == wire.CodeBusy:
		// Busy stored and deleted nothing, and says to send again
		// shortly: a node whose DRAM tier is making room answers a put
		// busy while it compacts (dataplane/dram_compact.go). A refusal,
		// not a wrong response: a preload sends its batch again, a run
		// counts it in Refused. Before, a preload into a node that had to
		// compact failed "unexpected response: busy".
		return fmt.Errorf("%w: pocket %v: %w", ErrRefused, op, r.Err())
	case r.Code != wire.CodeOK:
		return fmt.Errorf("%w: pocket %v: %w", ErrResponse, op, r.Err())
	case op == wire.OpGet && len(r.Payload) != size:
		return fmt.Errorf("%w: pocket get returned %d bytes, want %d", ErrResponse, len(r.Payload), size)
	}
	return nil
}

func (c *pocketConn) Close() error { return c.c.Close() }

// NodeRoom asks the node at addr, with one usage request (wire.OpUsage)
// stamped with opts' job, token and epoch, for the capacity of the tier
// the run uses (opts.NVMe) and the bytes the job holds there, and returns
// the bytes left to the job, in bytes (other jobs' values, which the node
// does not disclose, may take some of them). A stale-epoch refusal is
// answered by asking again at the node's epoch. Errors are the dial's,
// the connection's (bounded by ctx and 5 s) and the node's refusal (an
// unknown job, a bad token: the run itself then says what to pass).
func NodeRoom(ctx context.Context, addr string, opts client.ConnOptions) (int64, error) {
	capacity, used, err := nodeUsage(ctx, addr, opts)
	if err != nil {
		return 0, err
	}
	return max(capacity-used, 0), nil
}

// nodeUsage is NodeRoom's question: the capacity of the node's tier and
// the bytes the job holds there.
func nodeUsage(ctx context.Context, addr string, opts client.ConnOptions) (capacity, used int64, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := client.DialConn(ctx, addr, opts)
	if err != nil {
		return 0, 0, fmt.Errorf("bench: %w", err)
	}
	defer c.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(d)
	}
	var flags uint16
	if opts.NVMe {
		flags = wire.FlagTierNVMe
	}
	epoch := opts.Epoch
	for range 2 {
		u, err := usage(c, flags, &wire.Request{Job: opts.Job, Token: opts.Token, Epoch: epoch})
		var we *wire.Error
		if errors.As(err, &we) && we.Code == wire.CodeStaleEpoch && we.Epoch != 0 && we.Epoch != epoch {
			epoch = we.Epoch
			continue
		}
		if err != nil {
			return 0, 0, fmt.Errorf("bench: usage of %s: %w", addr, err)
		}
		return u.Capacity, u.Size, nil
	}
	return 0, 0, fmt.Errorf("bench: usage of %s: the node refused epoch %d it named", addr, epoch)
}

// usage sends one usage request over c and returns the node's reply: the
// job's bytes (Size) and the tier's capacity (Capacity).
func usage(c *client.Conn, flags uint16, req *wire.Request) (wire.Response, error) {
	var u wire.Response
	if _, err := c.Send(wire.OpUsage, flags, req, nil); err != nil {
		return u, err
	}
	if err := c.Flush(); err != nil {
		return u, err
	}
	r, err := c.Recv()
	if err != nil {
		return u, err
	}
	if err := r.Err(); err != nil {
		return u, err
	}
	if r.Op != wire.OpUsage.Reply() {
		return u, fmt.Errorf("usage answered with %v", r.Op)
	}
	err = wire.DecodeResponse(r.Meta, &u)
	return u, err
}
