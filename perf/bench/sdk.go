package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/pocketstore/pocket/pocket"
	"github.com/pocketstore/pocket/wire"
)

// SDKDialer returns a Dialer that drives a job through the SDK (package
// pocket): placement over the job's nodes, chunking of large values,
// multiplexed connections. Each Conn keeps up to the pipeline depth of
// SDK calls in flight in goroutines and hands their results back in
// order, so the generator's send/flush/recv loop measures the SDK's own
// latency per call. The SDK follows the job's map as it grows or shrinks.
// A call's error counts as a wrong response (ErrResponse), except a
// refused job or token (ErrNeedsJob) and the run's own end (its context),
// which stop the connection.
func SDKDialer(j *pocket.Job, valueSize int) Dialer {
	return func(ctx context.Context) (Conn, error) {
		return &sdkConn{j: j, ctx: ctx, valueSize: valueSize}, nil
	}
}

type sdkCall struct {
	op         Op
	key, value []byte
	done       chan error
}

type sdkConn struct {
	j         *pocket.Job
	ctx       context.Context
	valueSize int
	queued    []*sdkCall
	inflight  []*sdkCall
	buf       []byte
}

func (c *sdkConn) SendGet(key []byte) error {
	c.queued = append(c.queued, &sdkCall{op: Get, key: key})
	return nil
}

func (c *sdkConn) SendPut(key, value []byte) error {
	c.queued = append(c.queued, &sdkCall{op: Put, key: key, value: value})
	return nil
}

// SendDelete implements Deleter: a key not there counts as deleted.
func (c *sdkConn) SendDelete(key []byte) error {
	c.queued = append(c.queued, &sdkCall{op: Delete, key: key})
	return nil
}

// Flush starts the queued calls. With one call it is run by Recv on this
// goroutine, so an unpipelined run pays no goroutine hand-off.
func (c *sdkConn) Flush() error {
	if len(c.queued) == 1 && len(c.inflight) == 0 {
		c.inflight = append(c.inflight, c.queued[0])
		c.queued = c.queued[:0]
		return nil
	}
	for _, call := range c.queued {
		call.done = make(chan error, 1)
		go func() { call.done <- c.run(call, nil) }()
		c.inflight = append(c.inflight, call)
	}
	c.queued = c.queued[:0]
	return nil
}

func (c *sdkConn) run(call *sdkCall, dst []byte) error {
	key := string(call.key)
	switch call.op {
	case Put:
		return sdkError(c.ctx, c.j.Put(c.ctx, key, call.value))
	case Delete:
		if err := c.j.Delete(c.ctx, key); !errors.Is(err, pocket.ErrNotFound) {
			return sdkError(c.ctx, err)
		}
		return nil
	}
	v, err := c.j.GetInto(c.ctx, key, dst)
	if err != nil {
		return sdkError(c.ctx, err)
	}
	if len(v) != c.valueSize {
		return fmt.Errorf("%w: get returned %d bytes, want %d", ErrResponse, len(v), c.valueSize)
	}
	return nil
}

func (c *sdkConn) Recv() error {
	call := c.inflight[0]
	c.inflight = c.inflight[1:]
	if call.done == nil {
		if cap(c.buf) < c.valueSize {
			c.buf = make([]byte, c.valueSize)
		}
		return c.run(call, c.buf)
	}
	return <-call.done
}

func (c *sdkConn) Close() error { return nil }

// sdkError classifies an SDK call's error for the generator (see
// SDKDialer); nil stays nil.
func sdkError(ctx context.Context, err error) error {
	var we *wire.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &we) && needsJob(we.Code):
		return fmt.Errorf("the job was refused: %w; %w", err, ErrNeedsJob)
	case ctx.Err() != nil:
		return err
	}
	return fmt.Errorf("%w: sdk: %w", ErrResponse, err)
}

// SDKOpenJob opens the registered job id with its token through the
// controller (pocket.Store.OpenJob: the job's current map, followed as it
// changes) and returns it with a function that closes the store. The job
// stays registered: it is not the run's to deregister.
func SDKOpenJob(ctx context.Context, controller, id string, token []byte) (*pocket.Job, func(), error) {
	if id == "" || len(token) == 0 {
		return nil, nil, errors.New("bench: opening a registered job needs its id and token (--job JOBID, --token-file FILE or $POCKET_TOKEN)")
	}
	s, err := pocket.Dial(ctx, controller, pocket.Config{})
	if err != nil {
		return nil, nil, err
	}
	j, err := s.OpenJob(ctx, id, token)
	if err != nil {
		s.Close()
		return nil, nil, fmt.Errorf("bench: %w", err)
	}
	return j, func() { s.Close() }, nil
}

// SDKJob registers a fresh job named "bench" with the hints and returns it
// with a function that deregisters it and closes the store.
func SDKJob(ctx context.Context, controller string, h pocket.Hints) (*pocket.Job, func(), error) {
	s, err := pocket.Dial(ctx, controller, pocket.Config{})
	if err != nil {
		return nil, nil, err
	}
	j, err := s.RegisterJob(ctx, "bench", h)
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return j, func() {
		_ = j.Deregister(context.Background())
		s.Close()
	}, nil
}

// hintsString describes hints for results.
func hintsString(h pocket.Hints) string {
	return "lambdas=" + strconv.Itoa(h.Lambdas) + ",capacity=" + strconv.FormatInt(h.CapacityBytes, 10) +
		",peak_mbps=" + strconv.FormatInt(h.PeakMbps, 10) + ",latency_sensitive=" + strconv.FormatBool(h.LatencySensitive)
}
