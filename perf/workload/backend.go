package workload

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/pocketstore/pocket/wire"
)

// Backend is a store as a workload sees it: flat keys and byte values.
// Implementations are safe for concurrent use.
type Backend interface {
	// Put stores value under key, replacing any older value.
	Put(ctx context.Context, key string, value []byte) error
	// Get returns the value of key, read into dst when it fits dst's
	// capacity (the result then aliases dst). A missing key is an error
	// matching ErrNotFound.
	Get(ctx context.Context, key string, dst []byte) ([]byte, error)
	// Exists reports whether key holds a value (Pocket's lookup).
	Exists(ctx context.Context, key string) (bool, error)
	// Delete removes key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Close releases the backend's connections.
	Close() error
}

// Errors.
var (
	// ErrNotFound: the key holds no value.
	ErrNotFound = errors.New("workload: key not found")
	// ErrBadTarget: a target that names no usable store.
	ErrBadTarget = errors.New("workload: bad target")
)

// Store kinds of a Target.
const (
	KindPocket = "pocket"
	KindRedis  = "redis"
)

// Target says how a worker reaches the store. It travels to workers
// inside Task, so it holds only plain data.
type Target struct {
	Kind string `json:"kind"`
	// Addrs are the storage nodes of a static pocket job (no controller),
	// or the Redis servers (several: keys sharded by ShardOf).
	Addrs []string `json:"addrs,omitempty"`
	// Controller is the pocket controller's address; Job and Token are
	// then the job every worker opens.
	Controller string `json:"controller,omitempty"`
	Job        string `json:"job,omitempty"`
	Token      []byte `json:"token,omitempty"`
	// Tier is the tier of a static pocket job (0: wire.TierDRAM).
	Tier wire.Tier `json:"tier,omitempty"`
}

// String names the target for reports: "redis", "redis x3" (three
// shards), "pocket" or "pocket-nvme".
func (t Target) String() string {
	switch {
	case t.Kind == KindPocket && t.Tier == wire.TierNVMe:
		return "pocket-nvme"
	case t.Kind == KindRedis && len(t.Addrs) > 1:
		return fmt.Sprintf("redis x%d", len(t.Addrs))
	}
	return t.Kind
}

// ParseRedisURL turns redis://HOST[:PORT], or several such URLs separated
// by commas (shards: redis://A:1,redis://B:2), into a Redis target.
func ParseRedisURL(s string) (Target, error) {
	t := Target{Kind: KindRedis}
	for _, one := range strings.Split(s, ",") {
		one = strings.TrimSpace(one)
		u, err := url.Parse(one)
		if err != nil || u.Scheme != "redis" || u.Host == "" {
			return Target{}, fmt.Errorf("%w: %q is not redis://HOST:PORT[,redis://HOST:PORT...]", ErrBadTarget, s)
		}
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "6379")
		}
		t.Addrs = append(t.Addrs, host)
	}
	return t, nil
}

// ParseNodes turns "A,B,C" into a static pocket target.
func ParseNodes(s string) (Target, error) {
	var addrs []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return Target{}, fmt.Errorf("%w: no node addresses in %q", ErrBadTarget, s)
	}
	return Target{Kind: KindPocket, Addrs: addrs}, nil
}

// Open connects a worker (or the coordinator) to the target.
func Open(ctx context.Context, t Target) (Backend, error) {
	switch t.Kind {
	case KindRedis:
		switch len(t.Addrs) {
		case 0:
			return nil, fmt.Errorf("%w: redis target without an address", ErrBadTarget)
		case 1:
			return NewRedis(t.Addrs[0], 4), nil
		}
		return NewShardedRedis(t.Addrs, 4), nil
	case KindPocket:
		return openPocket(ctx, t)
	}
	return nil, fmt.Errorf("%w: kind %q", ErrBadTarget, t.Kind)
}

// counting wraps a Backend and counts payload bytes moved.
type counting struct {
	Backend
	read, written atomic.Int64
}

func (c *counting) Put(ctx context.Context, key string, value []byte) error {
	err := c.Backend.Put(ctx, key, value)
	if err == nil {
		c.written.Add(int64(len(value)))
	}
	return err
}

func (c *counting) Get(ctx context.Context, key string, dst []byte) ([]byte, error) {
	v, err := c.Backend.Get(ctx, key, dst)
	c.read.Add(int64(len(v)))
	return v, err
}
