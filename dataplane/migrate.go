package dataplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/internal/placement"
	"github.com/pocketstore/pocket/wire"
)

// Moving a draining node's data
//
// A draining node pushes each value of each of its jobs to the node that
// owns it under the job's map without the draining node, using ordinary
// data-plane puts with the job's token and the map's epoch, then deletes
// its own copy. Per value:
//
//  1. owner = placement.Pick over MigrateJob.Nodes of (key, ChunkOf(key));
//  2. stat the key at the owner: a value already there is newer (a client
//     wrote it after the drain began, since the drain sends clients'
//     puts to the new owners), so the old copy is dropped, not sent;
//  3. otherwise put it there with its stored flags (persist, manifest);
//  4. delete the local copy.
//
// Clients reading meanwhile ask the new owner first and, on "not found",
// the draining node, then the new owner once more (pocket/drain.go), so a
// value is always found at one of the two. The remaining race: a client
// put that lands at the owner between steps 2 and 3 is overwritten by the
// older value. Jobs in this store write intermediate data once and read
// it, so this is accepted and documented rather than closed with a
// put-if-absent operation.
//
// The placement of chunks is a contract with the SDK (pocket/object.go):
// chunk i >= 1 of object "k" is stored under the key "k\x00i" (decimal)
// and placed as (that key, i); every other key is placed as (key, 0).

// Sender sends one data-plane request; *client.Client implements it.
type Sender interface {
	Do(ctx context.Context, addr string, op wire.Op, flags uint16, req *wire.Request, payload, dst []byte) (client.Reply, error)
}

var _ Sender = (*client.Client)(nil)

// MigrateJob is one job whose values the node moves away.
type MigrateJob struct {
	Job   string
	Token []byte // the job's capability token
	Epoch uint64 // the map's epoch, sent with every request
	// Nodes are the owners: the job's map without draining or dead nodes,
	// with the map's weights.
	Nodes []placement.Node
}

// MigrateStats counts what a migration did.
type MigrateStats struct {
	Moved   int64 // values put on their new owner
	Skipped int64 // values the owner already had (a newer write)
	Failed  int64 // values left here after an error
	Bytes   int64 // bytes moved
}

// migrateBatch is how many keys are listed at a time: the tier's List
// callback may not modify the tier, so keys are collected, then moved.
const migrateBatch = 256

// ErrNoOwner means a job's map has no node that can take its values.
var ErrNoOwner = errors.New("dataplane: the job's map has no node to take its values")

// Migrate moves every value of mj.Job held by this node to its owner under
// mj.Nodes, with up to parallel requests in flight, and deletes the local
// copies. It returns the first error met (values that failed stay here),
// or ctx's error. Calling it again resumes where it stopped.
func (n *Node) Migrate(ctx context.Context, mj MigrateJob, s Sender, parallel int) (MigrateStats, error) {
	var st migrateCounters
	if len(mj.Nodes) == 0 {
		return MigrateStats{}, ErrNoOwner
	}
	set := placement.NewSet(mj.Nodes)
	if parallel <= 0 {
		parallel = 4
	}
	var firstErr error
	for _, t := range n.Tiers() {
		if err := n.migrateTier(ctx, t, set, &mj, s, parallel, &st); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return st.stats(), firstErr
}

type migrateCounters struct {
	moved, skipped, failed, bytes atomic.Int64
}

func (c *migrateCounters) stats() MigrateStats {
	return MigrateStats{Moved: c.moved.Load(), Skipped: c.skipped.Load(), Failed: c.failed.Load(), Bytes: c.bytes.Load()}
}

// migrateTier moves one tier's values of the job, batch by batch.
func (n *Node) migrateTier(ctx context.Context, t Tier, set *placement.Set, mj *MigrateJob, s Sender, parallel int, st *migrateCounters) error {
	job := []byte(mj.Job)
	var after []byte
	var firstErr error
	for {
		keys := listBatch(t, job, after)
		if len(keys) == 0 {
			return firstErr
		}
		after = keys[len(keys)-1]
		if err := n.moveBatch(ctx, t, set, mj, s, parallel, keys, st); err != nil && firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// listBatch returns up to migrateBatch keys of the job after `after`.
func listBatch(t Tier, job, after []byte) [][]byte {
	var keys [][]byte
	_ = t.List(job, nil, after, func(key []byte, _ Info) bool {
		keys = append(keys, append([]byte(nil), key...))
		return len(keys) < migrateBatch
	})
	return keys
}

// moveBatch moves keys with parallel workers and returns the first error.
func (n *Node) moveBatch(ctx context.Context, t Tier, set *placement.Set, mj *MigrateJob, s Sender, parallel int, keys [][]byte, st *migrateCounters) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		ferr error
		next atomic.Int64
	)
	for w := 0; w < min(parallel, len(keys)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(keys) || ctx.Err() != nil {
					return
				}
				if err := n.moveOne(ctx, t, set, mj, s, keys[i], st); err != nil {
					st.failed.Add(1)
					mu.Lock()
					if ferr == nil {
						ferr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return ferr
}

// moveOne moves one value (steps 1 to 4 of the protocol above).
func (n *Node) moveOne(ctx context.Context, t Tier, set *placement.Set, mj *MigrateJob, s Sender, key []byte, st *migrateCounters) error {
	job := []byte(mj.Job)
	i := set.Pick(key, ChunkOf(key))
	if i < 0 {
		return ErrNoOwner
	}
	owner := set.Node(i).ID
	val, flags, err := readValue(t, job, key)
	if errors.Is(err, ErrNotFound) {
		return nil // deleted meanwhile
	}
	if err != nil {
		return fmt.Errorf("migrate %q: read: %w", key, err)
	}
	tf := tierFlag(t)
	req := wire.Request{Job: job, Key: key, Token: mj.Token, Epoch: mj.Epoch}
	_, err = s.Do(ctx, owner, wire.OpStat, tf, &req, nil, nil)
	switch {
	case err == nil:
		st.skipped.Add(1)
	case errors.Is(err, wire.ErrNotFound):
		req := wire.Request{Job: job, Key: key, Token: mj.Token, Epoch: mj.Epoch}
		if _, err := s.Do(ctx, owner, wire.OpPut, uint16(flags)&wire.StoredFlags|tf, &req, val, nil); err != nil {
			return fmt.Errorf("migrate %q to %s: %w", key, owner, err)
		}
		st.moved.Add(1)
		st.bytes.Add(int64(len(val)))
	default:
		return fmt.Errorf("migrate %q: stat at %s: %w", key, owner, err)
	}
	if err := t.Delete(job, key); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("migrate %q: delete local copy: %w", key, err)
	}
	return nil
}

// readValue copies a value out of the tier. The copy is the put's
// payload; the tier's reference is released before the network is used,
// so a slow owner never pins tier memory.
func readValue(t Tier, job, key []byte) ([]byte, PutFlags, error) {
	v, err := t.Open(job, key)
	if err != nil {
		return nil, 0, err
	}
	defer v.Release()
	buf := make([]byte, 0, v.Size())
	for _, seg := range v.Segments() {
		buf = append(buf, seg...)
	}
	return buf, v.Flags(), nil
}

func tierFlag(t Tier) uint16 {
	if t.Kind() == KindNVMe {
		return wire.FlagTierNVMe
	}
	return 0
}

// ChunkOf returns the chunk number a key was placed with: i for the SDK's
// chunk key "object\x00i", else 0.
func ChunkOf(key []byte) uint32 {
	i := bytes.LastIndexByte(key, 0)
	if i < 0 {
		return 0
	}
	c, err := strconv.ParseUint(string(key[i+1:]), 10, 32)
	if err != nil {
		return 0
	}
	return uint32(c)
}

// JobValues counts the values of a job on this node, over all tiers.
func (n *Node) JobValues(job string) int64 {
	var count int64
	for _, t := range n.Tiers() {
		_ = t.List([]byte(job), nil, nil, func([]byte, Info) bool {
			count++
			return true
		})
	}
	return count
}
