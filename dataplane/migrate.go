package dataplane

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/internal/placement"
	"github.com/pocketstore/pocket/wire"
)

// Moving a job's values to their owners
//
// A draining node pushes each value of each of its jobs to the node that
// owns it under the job's map without the draining node, using ordinary
// data-plane puts with the job's token and the map's epoch, then deletes
// its own copy. When one job's map changes (a node joins it, or leaves
// it while staying in the cluster), every node of the map moves that
// job's values the same way, keeping those it still owns
// (MigrateJob.Self; the agent's mover, dataplane/agent/move.go). Per
// value (moveOne):
//
//  1. owner = placement.Pick over MigrateJob.Nodes of (key, ChunkOf(key));
//     a value whose owner is MigrateJob.Self stays, untouched; so does,
//     for now, a chunk of a version still leased here (its writer has not
//     confirmed it: see "Leased chunks stay" below);
//  2. mark the key moving: a client's delete (or delete-after-read) of it
//     here answers CodeBusy until step 5, and the SDK retries; then wait
//     for the deletes of it that began before the mark (a single-key
//     delete, a take, a prefix delete covering it) to end, since they
//     are past their check for keys moving (versionTable.markWaiting);
//  3. put the value at the owner with FlagIfAbsent and the value's stored
//     flags, version and object size. A value already there is newer: a
//     client wrote it after the drain began (clients put to the new owners
//     and this node refuses puts). It is kept, and if ours is a manifest
//     of another version, that version's chunks are dropped on every node,
//     since no writer will (its put replaced nothing);
//  4. delete the local copy, only if it still holds the version moved; a
//     value that is gone here meanwhile, or replaced, is deleted at the
//     owner too, conditionally on the version moved: the paths that
//     delete here without waiting for the mark (a chunk's version
//     dropped because its object was overwritten or deleted, a lease
//     that ran out) must not see the value come back at the owner, nor
//     its chunks outlive it;
//  5. unmark the key.
//
// So a move never overwrites a newer write, and a deleted key never comes
// back: a client deletes here (at the old owner) first, then at the owner
// (pocket/drain.go);
// a delete here before step 2 leaves nothing to move, one during steps 2-5
// waits, and one after finds the value at the owner.
//
// Leased chunks stay. A chunk of a version its writer has not confirmed
// yet (versionTable.leased) is not moved: it is left for a later pass and
// counted in MigrateStats.Leased, and Misplaced still counts it, so the
// mover and the drainer pass again (every moveRetry or drainRetry) and a
// job's map change does not end before it has moved. The writer's confirm
// (pocket/version.go) thus finds on each node exactly the chunks it put
// there, whatever map changes began meanwhile, and the put succeeds; once
// confirmed the chunks move like any value. A chunk that moved leased
// could be counted twice or not at all by a confirm running beside the
// move, and arrived at its owner leased after the owner's confirm, to
// expire under a published manifest: before, the SDK failed such a put
// (TestPutsSpanMapChanges). The wait is bounded: once
// MigrateJob.LeaseDeadline has passed (the mover and the drainer set it
// one chunk lease after the change or drain began), a leased chunk that
// would move is dropped with every chunk of its version here
// (MigrateStats.Dropped; the version is dead for a lease, so late chunks of
// it are refused) and its writer's confirm fails the put, which drops the
// version everywhere. Without that bound a writer that kept putting new
// chunks of a version it never confirms (each renews its lease) held its
// job's map change open for ever and a drain until its deadline, when the
// node left as lost for every job on it (hostile review).
//
// Finding the values to move costs memory in proportion to the values
// moved, not to those held: a move scans each tier in no order (scanKeys,
// nothing allocated per key), testing each key's owner as it goes, and
// copies only the misplaced keys, packed, in parts of at most
// migrateRoundBytes (migrateTier); the counts of what is left (Misplaced,
// JobValues) allocate nothing. Each scan sees every key put before it
// began, so a put that lands after one is found by the next: the mover and
// the drainer count afresh after each pass and pass again while any is
// left. (Before, a move listed and copied every key of the job, sorted,
// and every count listed them again: 862 and 358 bytes of heap per value
// held, with 10 of 100,000 values moving.)
//
// The placement of chunks is a contract with the SDK (wire/objects.go):
// chunk i of an object version is placed as (its chunk key, i); every other
// key as (key, 0).

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
	// Nodes are the owners: the job's map without its draining nodes,
	// with the map's weights (the set clients put to).
	Nodes []placement.Node
	// Self, when not empty, is this node's ID in Nodes: values it owns
	// stay here, neither moved nor counted. Empty: every value moves (a
	// draining node, never an owner of what it holds).
	Self string
	// LeaseDeadline, when not zero, ends the wait for leased chunks: after
	// it, a leased chunk that would move is dropped with its version here
	// (see "Leased chunks stay").
	// It moves by the time the node did not run since the move began
	// (Node.leaseWaitOver).
	LeaseDeadline time.Time
}

// MigrateStats counts what a migration did.
type MigrateStats struct {
	Moved   int64 // values put on their new owner
	Skipped int64 // values the owner already had (a newer write)
	Failed  int64 // values left here after an error
	// NoSpace counts the Failed values whose owner had no room for them
	// (wire.CodeNoSpace): they wait here for room, not for a retry.
	NoSpace int64
	Bytes   int64 // bytes moved
	// Leased counts chunks left here for a later pass because their
	// version is not confirmed yet (see "Leased chunks stay").
	Leased int64
	// Dropped counts the chunks of leased versions dropped here after
	// LeaseDeadline.
	Dropped int64
}

// migrateBatch is how many keys are moved between checks of the context.
const migrateBatch = 256

// migrateRoundBytes bounds the key names one round of a move keeps
// (bytes plus 4 per name; a var so tests can lower it).
var migrateRoundBytes = 32 << 20

// ErrNoOwner means a job's map has no node that can take its values.
var ErrNoOwner = errors.New("dataplane: the job's map has no node to take its values")

// Migrate moves every value of mj.Job held by this node, but those mj.Self
// owns, to its owner under mj.Nodes, with up to parallel requests in
// flight, and deletes the local copies. It returns the first error met
// (values that failed stay here), or ctx's error. Calling it again resumes
// where it stopped.
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
	moved, skipped, failed, noSpace, bytes, leased, dropped atomic.Int64
}

func (c *migrateCounters) stats() MigrateStats {
	return MigrateStats{Moved: c.moved.Load(), Skipped: c.skipped.Load(), Failed: c.failed.Load(), NoSpace: c.noSpace.Load(),
		Bytes: c.bytes.Load(), Leased: c.leased.Load(), Dropped: c.dropped.Load()}
}

// migrateTier moves one tier's misplaced values of the job (those whose
// owner under set is not mj.Self). A scan of the tier (misplacedKeys:
// nothing allocated per key held) copies the keys to move, up to
// migrateRoundBytes of them; when they all fit, it moves them and is done.
// Otherwise it splits them by a hash of the key into as many parts as
// fill half the bound each (room for puts meanwhile) and moves them part
// by part, scanning the tier once per part: memory follows the bound, and
// each key is tried once per call, so Failed counts values, not tries. A
// part that still overflows leaves the rest to the next pass (the mover's
// and the drainer's passes repeat while Misplaced or JobValues finds
// values left).
//
// A key put after a part's scan, or one deleted since, is handled as in
// the doc above: a later pass, or the count of what is left (Misplaced),
// scans afresh and sees the first; the move of the second finds it gone.
func (n *Node) migrateTier(ctx context.Context, t Tier, set *placement.Set, mj *MigrateJob, s Sender, parallel int, st *migrateCounters) error {
	job := []byte(mj.Job)
	ks, total, err := misplacedKeys(t, job, set, mj.Self, migrateRoundBytes, keyPart{n: 1})
	if err != nil {
		return fmt.Errorf("migrate: scan job %q: %w", mj.Job, err)
	}
	if !ks.full {
		return n.moveKeys(ctx, t, set, mj, s, parallel, ks, st)
	}
	half := max(int64(migrateRoundBytes)/2, 1)
	part := keyPart{seed: maphash.MakeSeed(), n: uint64((total + half - 1) / half)}
	var firstErr error
	for ; part.i < part.n; part.i++ {
		ks, _, err := misplacedKeys(t, job, set, mj.Self, migrateRoundBytes, part)
		if err != nil {
			err = fmt.Errorf("migrate: scan job %q: %w", mj.Job, err)
		} else {
			err = n.moveKeys(ctx, t, set, mj, s, parallel, ks, st)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// moveKeys moves ks batch by batch and returns the first error, or ctx's.
func (n *Node) moveKeys(ctx context.Context, t Tier, set *placement.Set, mj *MigrateJob, s Sender, parallel int, ks *keyList, st *migrateCounters) error {
	var firstErr error
	batch := make([][]byte, 0, min(migrateBatch, ks.len()))
	for i := 0; i < ks.len(); {
		batch = batch[:0]
		for ; i < ks.len() && len(batch) < migrateBatch; i++ {
			batch = append(batch, ks.key(i))
		}
		if err := n.moveBatch(ctx, t, set, mj, s, parallel, batch, st); err != nil && firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return firstErr
}

// keyPart selects part i of n of a job's keys by a seeded hash of the key;
// n == 1 selects every key.
type keyPart struct {
	seed maphash.Seed
	i, n uint64
}

func (p keyPart) holds(key []byte) bool {
	return p.n <= 1 || maphash.Bytes(p.seed, key)%p.n == p.i
}

// keyList is key names packed in one buffer, name i ending at ends[i]:
// 4 bytes per name besides its bytes, one allocation per growth.
type keyList struct {
	buf  []byte
	ends []uint32
	full bool // a name was left out for want of room
}

func (l *keyList) len() int { return len(l.ends) }

// key returns name i (a slice of the buffer: read only).
func (l *keyList) key(i int) []byte {
	start := uint32(0)
	if i > 0 {
		start = l.ends[i-1]
	}
	return l.buf[start:l.ends[i]:l.ends[i]]
}

// add appends key unless the list would pass limit bytes (bytes plus 4 per
// name) and holds a name already; then it marks the list full.
func (l *keyList) add(key []byte, limit int) {
	if l.full {
		return
	}
	if len(l.buf)+len(key)+4*(len(l.ends)+1) > limit && len(l.ends) > 0 {
		l.full = true
		return
	}
	l.buf = append(l.buf, key...)
	l.ends = append(l.ends, uint32(len(l.buf)))
}

// misplacedKeys scans the job's keys on t (scanKeys) and keeps those of
// part whose owner under set is not self (misplaced), up to limit bytes of
// them (as keyList.add counts). total is the bytes all of them would take,
// kept or not. With self empty every key is misplaced.
func misplacedKeys(t Tier, job []byte, set *placement.Set, self string, limit int, part keyPart) (ks *keyList, total int64, err error) {
	ks = &keyList{}
	err = scanKeys(t, job, nil, nil, func(key []byte, _ Info) {
		if part.holds(key) && misplaced(set, self, key) {
			total += int64(len(key)) + 4
			ks.add(key, limit)
		}
	})
	return ks, total, err
}

// misplaced reports whether key's owner under set (as moveOne places it)
// is not self; with self empty, every key is.
func misplaced(set *placement.Set, self string, key []byte) bool {
	if self == "" {
		return true
	}
	i := set.Pick(key, ChunkOf(key))
	return i < 0 || set.Node(i).ID != self
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
					if errors.Is(err, wire.ErrNoSpace) {
						st.noSpace.Add(1)
					}
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

// moveOne moves one value (steps 1 to 5 above).
func (n *Node) moveOne(ctx context.Context, t Tier, set *placement.Set, mj *MigrateJob, s Sender, key []byte, st *migrateCounters) error {
	job := []byte(mj.Job)
	i := set.Pick(key, ChunkOf(key))
	if i < 0 {
		return ErrNoOwner
	}
	owner := set.Node(i).ID
	if owner == mj.Self && mj.Self != "" {
		return nil // ours under the map: stays
	}
	if n.leasedChunk(t, mj.Job, key) {
		if !n.leaseWaitOver(mj.LeaseDeadline, time.Now()) {
			st.leased.Add(1)
			return nil // its writer confirms it here first: a later pass moves it
		}
		// Only if still leased, in one step with the test: a confirm that
		// came in between made the chunk part of the writer's published
		// object, which moves like any value.
		_, ver, _, _ := wire.ParseChunkKey(key)
		if deleted, ok := n.dropLeasedVersion(t, job, ver); ok {
			st.dropped.Add(int64(deleted))
			return nil // its writer's confirm fails: the put is dropped
		}
	}
	// Marked, then once no delete of it runs (markWaiting): a delete
	// that began before the mark ends first, and the read below finds
	// what it left.
	defer n.vers.markWaiting(t.Kind(), job, key)()
	val, info, err := readValue(t, job, key)
	if errors.Is(err, ErrNotFound) {
		return nil // deleted meanwhile
	}
	if err != nil {
		return fmt.Errorf("migrate %q: read: %w", key, err)
	}
	moved, err := n.pushValue(ctx, t, mj, s, owner, key, val, info)
	if err != nil {
		return err
	}
	if moved {
		st.moved.Add(1)
		st.bytes.Add(int64(len(val)))
	} else {
		st.skipped.Add(1)
	}
	_, err = t.DeleteVersion(job, key, info.Version)
	n.vers.forget(t.Kind(), job, key)
	switch {
	case err == nil:
		return nil
	case moved && (errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict)):
		return undoMove(ctx, t, mj, s, owner, key, info.Version)
	case errors.Is(err, ErrNotFound):
		return nil
	}
	return fmt.Errorf("migrate %q: delete local copy: %w", key, err)
}

// leasedChunk reports whether key is a chunk of a version still leased
// on tier t: one its writer has not confirmed yet. A version can only
// leave the leased state (a confirm), never return to it, so a chunk found
// unleased here stays unleased while it moves.
func (n *Node) leasedChunk(t Tier, job string, key []byte) bool {
	_, ver, _, ok := wire.ParseChunkKey(key)
	return ok && n.vers.leased(verKey{t.Kind(), job, ver})
}

// undoMove deletes at the owner the version of key a move put there, after
// the local copy was deleted or replaced meanwhile (step 4). A newer value
// at the owner stays. The delete (by version: sent twice, it deletes
// once) is sent again while the owner answers busy or cannot be reached,
// for up to dropPatience: the local copy is gone, so no later pass finds
// the key to undo it, and the value the move put would stay at the owner
// after whatever deleted it here. Before, one failed request left it
// there for good.
func undoMove(ctx context.Context, t Tier, mj *MigrateJob, s Sender, owner string, key []byte, ver uint64) error {
	req := wire.Request{Job: []byte(mj.Job), Key: key, Token: mj.Token, Epoch: mj.Epoch, Version: ver}
	err := doUntil(ctx, s, owner, wire.OpDelete, wire.FlagIfVersion|t.Kind().Flags(), &req, unanswered)
	if err != nil && !errors.Is(err, wire.ErrNotFound) && !errors.Is(err, wire.ErrConflict) {
		return fmt.Errorf("migrate %q: undo at %s: %w", key, owner, err)
	}
	return nil
}

// pushValue puts a value at its owner unless the owner has a value
// already (step 3); moved reports whether this put stored it.
func (n *Node) pushValue(ctx context.Context, t Tier, mj *MigrateJob, s Sender, owner string, key, val []byte, info Info) (moved bool, err error) {
	job := []byte(mj.Job)
	flags := uint16(info.Flags)&wire.StoredFlags | t.Kind().Flags() | wire.FlagIfAbsent
	req := wire.Request{Job: job, Key: key, Token: mj.Token, Epoch: mj.Epoch, Version: info.Version}
	if info.Flags&Manifest != 0 {
		req.ObjectSize = info.ObjectSize
	}
	// A busy owner (making room in its DRAM tier, dram_compact.go, or
	// over a job's unfinished puts) is asked again, as doPatient does.
	deadline := time.Now().Add(dropPatience)
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		_, err = s.Do(ctx, owner, wire.OpPut, flags, &req, val, nil)
		if !errors.Is(err, wire.ErrBusy) || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	if err == nil {
		return true, nil
	}
	if errors.Is(err, wire.ErrConflict) && info.Flags&Chunk != 0 {
		return false, nil // its version was dropped: nothing to move
	}
	if !errors.Is(err, wire.ErrExists) {
		return false, fmt.Errorf("migrate %q to %s: %w", key, owner, err)
	}
	if info.Flags&Manifest == 0 {
		return false, nil
	}
	req = wire.Request{Job: job, Key: key, Token: mj.Token, Epoch: mj.Epoch}
	r, err := s.Do(ctx, owner, wire.OpStat, t.Kind().Flags(), &req, nil, nil)
	if err != nil && !errors.Is(err, wire.ErrNotFound) {
		return false, fmt.Errorf("migrate %q: stat at %s: %w", key, owner, err)
	}
	if err == nil && r.Meta.Version == info.Version {
		return false, nil // moved by an earlier attempt
	}
	return false, n.dropEverywhere(ctx, t, mj, s, info.Version)
}

// dropEverywhere drops an object version's chunks here and on every owner.
// An owner that answers busy is moving a chunk of the version (its own
// map changed too): the drop waits that out (dropPatience at most), since
// a chunk that lands after the drop would stay. An error leaves the
// manifest here, so the next pass drops the version again.
func (n *Node) dropEverywhere(ctx context.Context, t Tier, mj *MigrateJob, s Sender, ver uint64) error {
	n.dropVersion(t, []byte(mj.Job), ver)
	var errs []error
	for _, o := range mj.Nodes {
		req := wire.Request{Job: []byte(mj.Job), Token: mj.Token, Epoch: mj.Epoch, Version: ver}
		if err := doPatient(ctx, s, o.ID, wire.OpDropVersion, t.Kind().Flags(), &req); err != nil {
			errs = append(errs, fmt.Errorf("drop version %x at %s: %w", ver, o.ID, err))
		}
	}
	return errors.Join(errs...)
}

// dropPatience bounds how long dropEverywhere waits for a busy owner.
const dropPatience = 5 * time.Second

// doPatient sends a payload-less request, again while the node answers
// busy, backing off from 1 to 50 ms, for up to dropPatience.
func doPatient(ctx context.Context, s Sender, addr string, op wire.Op, flags uint16, req *wire.Request) error {
	return doUntil(ctx, s, addr, op, flags, req, func(err error) bool { return errors.Is(err, wire.ErrBusy) })
}

// unanswered reports whether err leaves a request to be sent again: the
// node answered busy (it did nothing), or could not be reached.
func unanswered(err error) bool {
	return errors.Is(err, wire.ErrBusy) || errors.Is(err, wire.ErrUnavailable) || errors.Is(err, wire.ErrClosed)
}

// doUntil is doPatient sending again while again(err).
func doUntil(ctx context.Context, s Sender, addr string, op wire.Op, flags uint16, req *wire.Request, again func(error) bool) error {
	deadline := time.Now().Add(dropPatience)
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		_, err := s.Do(ctx, addr, op, flags, req, nil, nil)
		if err == nil || !again(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// readValue copies a value out of the tier. The copy is the put's
// payload; the tier's reference is released before the network is used,
// so a slow owner never pins tier memory.
func readValue(t Tier, job, key []byte) ([]byte, Info, error) {
	open := t.Open
	if nt, ok := t.(*NVMe); ok {
		open = nt.openUncharged // the node's read, not the job's (chargeRead)
	}
	v, err := open(job, key)
	if err != nil {
		return nil, Info{}, err
	}
	defer v.Release()
	info, err := t.Stat(job, key)
	if err != nil || info.Version != v.Version() {
		info = Info{Size: v.Size(), Flags: v.Flags(), Version: v.Version(), ObjectSize: v.Size()}
	}
	buf := make([]byte, 0, v.Size())
	for _, seg := range v.Segments() {
		buf = append(buf, seg...)
	}
	return buf, info, nil
}

// ChunkOf returns the chunk number a key was placed with: i for chunk i
// of an object version (wire.ParseChunkKey), else 0.
func ChunkOf(key []byte) uint32 {
	if _, _, i, ok := wire.ParseChunkKey(key); ok && i <= math.MaxUint32 {
		return uint32(i)
	}
	return 0
}

// JobValues counts the values of a job on this node, over all tiers
// (scanKeys: nothing allocated per value).
func (n *Node) JobValues(job string) int64 {
	var count int64
	for _, t := range n.Tiers() {
		_ = scanKeys(t, []byte(job), nil, nil, func([]byte, Info) { count++ })
	}
	return count
}

// Misplaced counts the values of a job on this node, over all tiers, whose
// owner under nodes (placement.Pick of (key, ChunkOf(key)), as Migrate
// places them) is not self: what a move by that set has left to do. With
// no nodes every value is misplaced; with self empty too. It scans each
// tier afresh (scanKeys: nothing allocated per value), so it sees every
// key put before it started.
func (n *Node) Misplaced(job string, nodes []placement.Node, self string) int64 {
	set := placement.NewSet(nodes)
	var count int64
	for _, t := range n.Tiers() {
		_ = scanKeys(t, []byte(job), nil, nil, func(key []byte, _ Info) {
			if misplaced(set, self, key) {
				count++
			}
		})
	}
	return count
}
