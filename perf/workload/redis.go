package workload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/pocketstore/pocket/perf/resp"
)

// Redis is a minimal Redis client: GET, SET, EXISTS and DEL over plain TCP
// with a small pool of connections, one request in flight on each.
// Commands and replies go through perf/resp (the one RESP codec); a GET's
// value is read straight into the caller's buffer (resp.Reader.NextInto).
type Redis struct {
	addr  string
	conns chan *redisConn // idle connections
	slots chan struct{}   // one token per connection that may exist
}

type redisConn struct {
	nc net.Conn
	w  *resp.Writer
	r  *resp.Reader
}

// ErrRedis wraps an error reply from the server.
var ErrRedis = errors.New("workload: redis error reply")

// maxRedisBulk bounds a reply's value before anything is allocated
// (Redis's own proto-max-bulk-len).
const maxRedisBulk = resp.DefaultMaxBulk

// NewRedis returns a client of the server at addr with at most conns
// connections, dialed when first needed.
func NewRedis(addr string, conns int) *Redis {
	conns = max(conns, 1)
	r := &Redis{addr: addr, conns: make(chan *redisConn, conns), slots: make(chan struct{}, conns)}
	for range conns {
		r.slots <- struct{}{}
	}
	return r
}

// conn takes an idle connection, or dials one if the pool has room.
func (r *Redis) conn(ctx context.Context) (*redisConn, error) {
	select {
	case c := <-r.conns:
		return c, nil
	case <-r.slots:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", r.addr)
	if err != nil {
		r.slots <- struct{}{}
		return nil, fmt.Errorf("workload: redis %s: %w", r.addr, err)
	}
	return &redisConn{nc: nc, w: resp.NewWriter(nc, 64<<10), r: resp.NewReader(nc, 64<<10, maxRedisBulk)}, nil
}

// done returns c to the pool, or closes it after an error that may have
// left the stream out of step.
func (r *Redis) done(c *redisConn, err error) {
	if err != nil && !errors.Is(err, ErrRedis) {
		c.nc.Close()
		r.slots <- struct{}{}
		return
	}
	r.conns <- c
}

// do sends one command and reads its reply; the reply's bulk data lands in
// dst when it fits.
func (r *Redis) do(ctx context.Context, dst []byte, args ...[]byte) (resp.Reply, error) {
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		// The context's timer may not have fired yet; a socket deadline
		// in the past would fail the request (and the connection) anyway.
		return resp.Reply{}, fmt.Errorf("workload: redis: %w", context.DeadlineExceeded)
	}
	c, err := r.conn(ctx)
	if err != nil {
		return resp.Reply{}, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.nc.SetDeadline(dl)
	} else {
		c.nc.SetDeadline(time.Time{})
	}
	rep, err := c.roundTrip(dst, args)
	r.done(c, err)
	return rep, err
}

func (c *redisConn) roundTrip(dst []byte, args [][]byte) (resp.Reply, error) {
	if len(args) == 3 && string(args[0]) == "SET" {
		c.w.WriteSet(args[1], args[2])
	} else {
		c.w.WriteCommand(args...)
	}
	if err := c.w.Flush(); err != nil {
		return resp.Reply{}, fmt.Errorf("workload: redis write: %w", err)
	}
	rep, err := c.r.NextInto(dst)
	if err != nil {
		return resp.Reply{}, fmt.Errorf("workload: redis read: %w", err)
	}
	if rep.Kind == resp.SimpleString || rep.Kind == resp.Error {
		// Text points into the connection's buffer, which the next user
		// of the connection overwrites.
		rep.Data = bytes.Clone(rep.Data)
	}
	if rep.Kind == resp.Error {
		return rep, fmt.Errorf("%w: %s", ErrRedis, rep.Data)
	}
	return rep, nil
}

// Put is SET.
func (r *Redis) Put(ctx context.Context, key string, value []byte) error {
	rep, err := r.do(ctx, nil, []byte("SET"), []byte(key), value)
	if err == nil && (rep.Kind != resp.SimpleString || string(rep.Data) != "OK") {
		err = fmt.Errorf("workload: redis SET %q: unexpected %v reply", key, rep.Kind)
	}
	return err
}

// Get is GET; the value is read straight into dst when it fits.
func (r *Redis) Get(ctx context.Context, key string, dst []byte) ([]byte, error) {
	rep, err := r.do(ctx, dst[:0:cap(dst)], []byte("GET"), []byte(key))
	switch {
	case err != nil:
		return nil, err
	case rep.Kind == resp.Null:
		return nil, fmt.Errorf("%w: redis GET %q", ErrNotFound, key)
	case rep.Kind != resp.Bulk:
		return nil, fmt.Errorf("workload: redis GET %q: unexpected %v reply", key, rep.Kind)
	}
	return rep.Data, nil
}

// Exists is EXISTS.
func (r *Redis) Exists(ctx context.Context, key string) (bool, error) {
	rep, err := r.do(ctx, nil, []byte("EXISTS"), []byte(key))
	if err == nil && rep.Kind != resp.Integer {
		err = fmt.Errorf("workload: redis EXISTS %q: unexpected %v reply", key, rep.Kind)
	}
	return rep.Int > 0, err
}

// Delete is DEL.
func (r *Redis) Delete(ctx context.Context, key string) error {
	rep, err := r.do(ctx, nil, []byte("DEL"), []byte(key))
	if err == nil && rep.Kind != resp.Integer {
		err = fmt.Errorf("workload: redis DEL %q: unexpected %v reply", key, rep.Kind)
	}
	return err
}

// Close closes the idle connections; call it when no request is running.
func (r *Redis) Close() error {
	for {
		select {
		case c := <-r.conns:
			c.nc.Close()
			r.slots <- struct{}{}
		default:
			return nil
		}
	}
}

// ShardedRedis spreads keys over several Redis servers by a hash of the key
// (client-side sharding, as Redis Cluster clients and twemproxy do), so a
// workload meets as many single-threaded redis-server processes as it
// would meet storage nodes: the same cores on both sides.
type ShardedRedis struct{ shards []*Redis }

// NewShardedRedis returns a client of the servers at addrs, each with at
// most conns connections. A key's server is ShardOf(key, len(addrs)).
func NewShardedRedis(addrs []string, conns int) *ShardedRedis {
	s := &ShardedRedis{}
	for _, a := range addrs {
		s.shards = append(s.shards, NewRedis(a, conns))
	}
	return s
}

// ShardOf is the shard of key among n: FNV-1a of the key modulo n.
func ShardOf(key string, n int) int {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}

func (s *ShardedRedis) shard(key string) *Redis { return s.shards[ShardOf(key, len(s.shards))] }

// Put is SET on the key's shard.
func (s *ShardedRedis) Put(ctx context.Context, key string, value []byte) error {
	return s.shard(key).Put(ctx, key, value)
}

// Get is GET on the key's shard.
func (s *ShardedRedis) Get(ctx context.Context, key string, dst []byte) ([]byte, error) {
	return s.shard(key).Get(ctx, key, dst)
}

// Exists is EXISTS on the key's shard.
func (s *ShardedRedis) Exists(ctx context.Context, key string) (bool, error) {
	return s.shard(key).Exists(ctx, key)
}

// Delete is DEL on the key's shard.
func (s *ShardedRedis) Delete(ctx context.Context, key string) error {
	return s.shard(key).Delete(ctx, key)
}

// Close closes every shard's idle connections.
func (s *ShardedRedis) Close() error {
	var errs []error
	for _, r := range s.shards {
		errs = append(errs, r.Close())
	}
	return errors.Join(errs...)
}
