package pocket

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/wire"
)

// Entry is one name in a listing: a value's, with its size in bytes.
// List and ListReport list every name, directory markers (the names
// CreateDir writes, ending in '/', size 0) among them, with Dir false;
// Dir marks a directory collapsed by a delimiter, which only CountFiles
// asks for (a new user's trial read "with a delimiter" here and found no
// call that takes one).
type Entry struct {
	Name string
	Size int64
	Dir  bool
}

// List returns every name of the job starting with prefix (a string
// prefix: "a" lists "ab" too), in ascending order, merged from all of the
// job's nodes. Chunk keys are hidden. It lists what the nodes it can ask
// hold: the names on a node the map marks dead, or that left the map
// dead (Map.Lost), are missing with no error; ListReport says which
// nodes a listing could not cover.
func (j *Job) List(ctx context.Context, prefix string) ([]Entry, error) {
	return j.list(ctx, prefix, 0)
}

// Listing is a listing and the nodes of the job it could not cover, whose
// names it is missing. A listing with none of them (Partial false) names
// every key of the prefix.
type Listing struct {
	Entries []Entry
	// Dead are the nodes the map marked dead: not asked. Their values
	// are unavailable, and lost if the node stays dead past the
	// controller's grace (or the controller restarted without it).
	Dead []string
	// Lost are the nodes that left the map dead (Map.Lost): their values
	// are gone (reads answer ErrLost: recompute them).
	Lost []LostNode
	// Gone are the nodes of an ended job's map found gone (GoneNodes):
	// the persisted values they held are gone.
	Gone []string
}

// Partial reports whether the listing may miss names: some node of the
// job's map was dead, lost or gone.
func (l Listing) Partial() bool { return len(l.Dead)+len(l.Lost)+len(l.Gone) > 0 }

// ListReport is List, and says which nodes of the map it ran on it could
// not cover (Listing.Partial). With an error, the Listing's Entries are
// nil.
func (j *Job) ListReport(ctx context.Context, prefix string) (Listing, error) {
	ents, m, err := j.listOn(ctx, prefix, 0)
	if err != nil {
		return Listing{}, err
	}
	gone := j.GoneNodes()
	return Listing{Entries: ents, Dead: deadNotGone(m, gone), Lost: slices.Clone(m.Lost), Gone: gone}, nil
}

// deadNotGone are the nodes map m marks dead that the handle has not found
// gone: not asked, they may come back with their names.
func deadNotGone(m Map, gone []string) []string {
	var out []string
	for _, n := range m.Nodes {
		if m.Dead[n.Addr] && !slices.Contains(gone, n.Addr) {
			out = append(out, n.Addr)
		}
	}
	return out
}

// list pages through every node's listing (with an optional delimiter)
// and merges them (listOn).
func (j *Job) list(ctx context.Context, prefix string, delim byte) ([]Entry, error) {
	ents, _, err := j.listOn(ctx, prefix, delim)
	return ents, err
}

// listOn pages through every node's listing (with an optional delimiter)
// and merges them, starting over (up to mapRetries times) when the pass
// met or missed a change of the job's map (passAgain). A listing that
// completes names every key that existed throughout it, once, on the
// nodes of the map it returns that it could ask (not dead).
func (j *Job) listOn(ctx context.Context, prefix string, delim byte) ([]Entry, Map, error) {
	for attempt := 0; ; attempt++ {
		m := j.snapshot()
		ents, err := j.listOnce(ctx, prefix, delim)
		var again bool
		if again, err = j.passAgain(ctx, err, m.Epoch, attempt); again {
			continue
		}
		return ents, m, err
	}
}

// passAgain reports whether a pass over the job's nodes in the order
// values move (movePhases: a listing, a prefix delete), which ran on the
// map of epoch used (on retry attempt, 0 the first) and ended with err,
// starts over: on a newer map if a node said the map is stale or could not
// be reached (fanOutChanged), or, the pass done, if the job's map changed
// while it ran. Its order of the nodes was the old map's, and a change
// that reverses a move (a node that joined the map leaves it again) moves
// values onto nodes the pass had already asked: a listing missed them, a
// prefix delete left them (TestListingSpansMapChange,
// TestDropSpansMapChange). A pass that ends on the map it started with met
// no such change: a node that moved on to a newer map refuses the older
// one as stale. From mapRetries on it answers false.
func (j *Job) passAgain(ctx context.Context, err error, used uint64, attempt int) (bool, error) {
	if attempt >= mapRetries {
		return false, err
	}
	again, err := j.fanOutChanged(ctx, err, used, attempt)
	return again || err == nil && j.snapshot().Epoch != used, err
}

// listOnce pages through every node's listing and merges the nodes'
// sorted listings into one (a name on several nodes once, the last node's
// entry as before): each node's comes strictly ascending (listProgress
// refuses any other). While the job's map changes, the nodes are
// listed in phases, in parallel within each (movePhases): a moved value is
// put at its new owner before it leaves its old one, so listing the nodes
// it leaves before the nodes it goes to finds it at one or the other; all
// at once, a listing could miss a value that moved in between. The phases
// are those of the map the pass starts with: list starts over when the map
// changed meanwhile (passAgain).
func (j *Job) listOnce(ctx context.Context, prefix string, delim byte) ([]Entry, error) {
	var lists [][]Entry
	for _, ts := range j.movePhases() {
		ls, err := j.listNodes(ctx, ts, prefix, delim)
		if err != nil {
			return nil, j.wrap("list", prefix, err)
		}
		lists = append(lists, ls...)
	}
	total := 0
	for _, l := range lists {
		total += len(l)
	}
	// A k-way merge: k is the job's node count, small.
	out := make([]Entry, 0, total)
	pos := make([]int, len(lists))
	for {
		best := -1
		for i, l := range lists {
			if pos[i] == len(l) {
				continue
			}
			switch {
			case best < 0 || l[pos[i]].Name < lists[best][pos[best]].Name:
				best = i
			case l[pos[i]].Name == lists[best][pos[best]].Name:
				pos[best]++ // the later node's entry wins
				best = i
			}
		}
		if best < 0 {
			return out, nil
		}
		out = append(out, lists[best][pos[best]])
		pos[best]++
	}
}

// nextAfter is the cursor that resumes after an entry; for a directory
// entry it skips every key under the directory.
func nextAfter(e wire.Entry) []byte {
	k := append([]byte(nil), e.Key...)
	if e.Dir {
		k = append(k, 0xFF)
	}
	return k
}

// listProgress checks that a listing page from addr moves on: at most
// limit entries (what was asked), each key past the one before it and,
// after the first page (paged), past the cursor after; and a page that
// says more lists a key. Else it is malformed, naming addr. A hostile
// trial's node answered every page with more and the same key: 402,319
// requests in 10 s, ended only by the caller's context (the CLI's data
// commands have none). A node's keys come sorted (dataplane/list.go), so
// a genuinely long listing passes.
//
// Each key must also lie under the prefix asked for: a re-check's node
// answered List("a/") with "zzz/secret", which was listed (and counted).
func listProgress(addr string, prefix, after []byte, paged bool, m *wire.Response, limit int) error {
	switch n := len(m.Entries); {
	case n > limit:
		return wire.Errorf(wire.CodeMalformed, "node %s: a listing page of %d keys, asked for %d at most", addr, n, limit)
	case m.More && n == 0:
		return wire.Errorf(wire.CodeMalformed, "node %s: a listing page says more and lists no key", addr)
	}
	prev := after
	for i := range m.Entries {
		k := m.Entries[i].Key
		if !bytes.HasPrefix(k, prefix) {
			return wire.Errorf(wire.CodeMalformed, "node %s: listing key %s is not under the prefix %s asked for",
				addr, shownName(string(k)), shownName(string(prefix)))
		}
		if (paged || i > 0) && bytes.Compare(k, prev) <= 0 {
			return wire.Errorf(wire.CodeMalformed, "node %s: listing key %s is not after %s before it", addr, shownName(string(k)), shownName(string(prev)))
		}
		prev = k
	}
	return nil
}

// MaxListBytes bounds what one node's part of a listing may hold in the
// client, counted as each name's bytes and ListEntryCost for its entry:
// past it the listing fails (wire.CodeTooLarge), naming the node. A
// re-check's hostile node answered every page with new keys in order, and
// a List without a deadline held 12.6 million of them (1.3 GiB) after
// 20 s; the progress checks (listProgress) pass such pages. 1 GiB is
// about 4.7 million short names; list under narrower prefixes past it.
const (
	MaxListBytes = 1 << 30
	// ListEntryCost is what an entry counts beyond its name: the Python
	// client's measured cost (213-236 bytes), which the Python client
	// counts too; a Go Entry takes less (32 bytes and its name's).
	ListEntryCost = 224
)

// listBound is MaxListBytes (tests lower it).
var listBound int64 = MaxListBytes

// listHeld counts a node's listing against listBound.
type listHeld int64

func (h *listHeld) add(addr string, ents []wire.Entry) error {
	for i := range ents {
		*h += listHeld(len(ents[i].Key) + ListEntryCost)
	}
	if int64(*h) > listBound {
		return wire.Errorf(wire.CodeTooLarge, "node %s: its listing is over %d bytes of entries (names and %d bytes each: pocket.MaxListBytes): list under narrower prefixes",
			addr, listBound, ListEntryCost)
	}
	return nil
}

// dirPrefix turns a directory name into its key prefix ("" is the root).
// Trailing slashes are dropped; leading ones are part of the name, as they
// are in keys ("/x" and "x" are two keys, and two directories).
func dirPrefix(dir string) string {
	dir = strings.TrimRight(dir, "/")
	if dir == "" {
		return ""
	}
	return dir + "/"
}

// CreateDir makes a directory (a marker key "dir/"); creating one that
// exists is not an error.
func (j *Job) CreateDir(ctx context.Context, dir string) error {
	p := dirPrefix(dir)
	if err := checkName(p); err != nil {
		return err
	}
	err := j.fences.await(ctx, p, false)
	if err == nil {
		err = j.finish(ctx, p, false, func(ctx context.Context) error {
			_, err := j.do(ctx, wire.OpPut, 0, []byte(p), 0, nil, nil)
			return err
		})
	}
	return j.wrap("create dir", dir, err)
}

// CountFiles returns the number of direct children (values and
// directories) of dir; ErrNotFound when dir neither exists nor has any.
// With a node of the map dead (not asked, and it may come back with its
// names) the count is not known: it answers that node's ErrUnavailable.
// Before, it counted what the other nodes held, with no error, and
// answered ErrNotFound for a directory whose names were all on the dead
// node (a hostile trial: 6 of 10, and after the node came back, 10). The
// names of nodes the map lists lost are gone, and not counted.
func (j *Job) CountFiles(ctx context.Context, dir string) (int, error) {
	p := dirPrefix(dir)
	ents, m, err := j.listOn(ctx, p, '/')
	if err != nil {
		return 0, err
	}
	if dead := deadNotGone(m, j.GoneNodes()); len(dead) > 0 {
		return 0, j.wrap("count files", dir, deadNodeErr(dead[0]))
	}
	n, marker := 0, false
	for _, e := range ents {
		if e.Name == p {
			marker = true
			continue
		}
		n++
	}
	if n == 0 && !marker && p != "" {
		return 0, j.wrap("count files", dir, ErrNotFound)
	}
	return n, nil
}

// RemoveAll deletes name and, recursively, everything under name/ (as
// Pocket's delete), with or without a trailing slash on name. Nodes delete
// at most a page of keys per request, naming the chunked objects they
// removed; their chunks are then dropped on every node. A name that holds
// nothing is no error (as os.RemoveAll); RemoveAllCount says what was
// deleted. A name that is empty or only slashes names the whole job: it
// is refused with ErrBadName before anything is sent, as `pocket rm`
// refuses it without --all (an empty prefix variable in a shuffle had
// emptied the job); DeleteAll deletes every value.
func (j *Job) RemoveAll(ctx context.Context, name string) error {
	_, err := j.RemoveAllCount(ctx, name)
	return err
}

// DeleteAll deletes every value of the job (what `pocket rm --all`
// does), as RemoveAllCount of a name would everything under it; Under
// counts the names deleted.
func (j *Job) DeleteAll(ctx context.Context) (Removed, error) {
	return j.removeUnder(ctx, "")
}

// errWholeJob refuses a recursive delete of a name that names the whole
// job (RemoveAll).
func errWholeJob(name string) error {
	return fmt.Errorf("%w %s: it names the whole job; DeleteAll deletes every value of the job", ErrBadName, shownName(name))
}

// Removed is what RemoveAllCount (or DeleteAll) deleted: Name is whether name itself was
// a value, Under how many names under name/ went (values, counted once
// however many chunks they have, and directory markers; for DeleteAll,
// every name of the job). Nodes older than the count answer 0 for Under.
// ChunkBytes is the bytes of an ended job's chunk keys the recursive
// delete removed under name (a live job's chunks, and those of an object
// deleted by its own name, go with their versions, uncounted): with
// Count() 0, chunks no manifest named, left by a writer that stopped
// between confirming its chunks and publishing (persisted ones outlive the
// job until deleted).
type Removed struct {
	Name       bool
	Under      int64
	ChunkBytes int64
}

// removeCount is what a prefix delete's nodes said they removed: names,
// and an ended job's chunk bytes (Removed).
type removeCount struct{ names, chunkBytes atomic.Int64 }

// Count is the number of names deleted.
func (r Removed) Count() int64 {
	if r.Name {
		return r.Under + 1
	}
	return r.Under
}

// RemoveAllCount is RemoveAll, and reports what it deleted: Count() is 0
// when nothing was there (the error is still nil). A node of the map that
// is dead or gone held names it cannot count; the Job's Map says which
// (Dead, Lost). With an error, the Removed counts what was deleted before
// it.
func (j *Job) RemoveAllCount(ctx context.Context, name string) (Removed, error) {
	if dirPrefix(name) == "" {
		return Removed{}, errWholeJob(name)
	}
	return j.removeUnder(ctx, name)
}

// removeUnder is RemoveAllCount, and DeleteAll for an empty name.
func (j *Job) removeUnder(ctx context.Context, name string) (Removed, error) {
	var res Removed
	var n removeCount // the pass may go on past ctx's end (finish)
	p := dirPrefix(name)
	err := j.fences.await(ctx, p, true)
	if err == nil {
		err = j.finish(ctx, p, true, func(ctx context.Context) error { return j.deletePrefix(ctx, p, &n) })
	}
	res.Under, res.ChunkBytes = n.names.Load(), n.chunkBytes.Load()
	if err != nil {
		return res, j.wrap("delete", name, err)
	}
	if p == "" {
		return res, nil
	}
	key := strings.TrimSuffix(p, "/")
	if err := checkName(key); err != nil {
		return res, err
	}
	err = j.deleteKey(ctx, key)
	switch {
	case err == nil:
		res.Name = true
	case !isNotFound(err) && !j.holdsNone(err):
		return res, j.wrap("delete", key, err)
	}
	return res, nil
}

// deletePrefix asks every node to delete the keys under prefix, page by
// page, and drops the chunks of the objects removed, starting over (up to
// mapRetries times) when the pass met or missed a change of the job's map
// (passAgain): values may have moved onto nodes it had emptied (see
// drainingFirst; TestDropSpansMapChange). It adds what the nodes deleted
// to *n.
func (j *Job) deletePrefix(ctx context.Context, prefix string, n *removeCount) error {
	for attempt := 0; ; attempt++ {
		if err := givenUp(ctx); err != nil {
			return err // no pass starts once the caller has gone
		}
		used := j.snapshot().Epoch
		err := j.deletePrefixOnce(ctx, prefix, n)
		var again bool
		if again, err = j.passAgain(ctx, err, used, attempt); again {
			continue
		}
		j.settleUnder(ctx, prefix) // undropped.go
		return err
	}
}

// deletePrefixOnce deletes the keys under prefix node by node group
// (movePhases): the nodes values leave first, then the others, then those
// values reach; within a group at once, each node asked again while it
// has more (a page at a time) and while it answers busy (it is moving a
// key under the prefix: sendAll), and a group is done before the next
// starts. A value moves from an earlier group to a later one, put at its
// new owner before it leaves the old: once the nodes it leaves hold no
// key under the prefix, nothing under it can arrive at the later ones,
// which are then emptied for good. Sent to every node at once, the
// destinations emptied first and the sources' movers then put values
// there (put-if-absent finds them empty): RemoveAll returned nil and left
// values behind.
func (j *Job) deletePrefixOnce(ctx context.Context, prefix string, n *removeCount) error {
	req := wire.Request{Key: []byte(prefix)}
	for _, ts := range j.movePhases() {
		for len(ts) > 0 {
			if err := givenUp(ctx); err != nil {
				return err // nor a group, nor a page
			}
			replies, err := j.sendAll(ctx, ts, wire.OpDelete, wire.FlagPrefix, req)
			var more []target
			for i, r := range replies {
				if perr := deleteProgress(ts[i].addr, &r.Meta); perr != nil {
					err = cmp.Or(err, perr) // counted as nothing
					continue
				}
				n.names.Add(int64(r.Meta.Count))
				n.chunkBytes.Add(max(r.Meta.Size, 0))
				for _, v := range r.Meta.Versions {
					j.dropVersion(v)
				}
				if r.Meta.More {
					more = append(more, ts[i])
				}
			}
			if err != nil {
				return err
			}
			ts = more
		}
	}
	return nil
}

// deleteProgress checks that a prefix delete's page from addr that says
// more deleted something (names, or an ended job's chunk bytes): else it
// is malformed, naming addr. A hostile trial's node answered every page
// with more and nothing deleted: DeleteAll sent 223,687 requests in 10 s,
// ended only by the caller's context. A node says more only once it has
// deleted a page of keys (dataplane's deletePrefix).
//
// A page's count is at most maxPageNames: a re-check's node claimed
// MaxInt64 names on two pages, and DeleteAll's count came back -2.
func deleteProgress(addr string, m *wire.Response) error {
	if m.More && m.Count == 0 && m.Size == 0 {
		return wire.Errorf(wire.CodeMalformed, "node %s: a prefix delete's page says more and deleted nothing", addr)
	}
	if m.Count > maxPageNames {
		return wire.Errorf(wire.CodeMalformed, "node %s: a prefix delete's page claims %d names deleted", addr, m.Count)
	}
	return nil
}

// maxPageNames bounds the names one prefix-delete page may claim: far past
// what a node deletes per request, and far from overflowing a sum.
const maxPageNames = 1 << 32

// movePhases groups the job's live nodes (a dead node's values are gone
// with it) in the order values move between them: those draining (whose
// values leave them), then the others, then those joining (where values
// arrive); one group when nothing moves. Requests that must meet every
// value (listings, prefix deletes, version requests) go group by group.
func (j *Job) movePhases() [][]target {
	j.mu.RLock()
	m, job := j.m, j.jobBytes
	j.mu.RUnlock()
	ts := targetsOf(m, job)
	var draining, others, joining []target
	for _, t := range ts {
		switch {
		case t.dead:
		case m.Draining[t.addr]:
			draining = append(draining, t)
		case m.Joining[t.addr]:
			joining = append(joining, t)
		default:
			others = append(others, t)
		}
	}
	var out [][]target
	for _, g := range [][]target{draining, others, joining} {
		if len(g) > 0 {
			out = append(out, g)
		}
	}
	return out
}

// listNodes pages through the listings of ts in parallel: each node's
// entries (chunk keys left out), strictly ascending (listProgress).
func (j *Job) listNodes(ctx context.Context, ts []target, prefix string, delim byte) ([][]Entry, error) {
	// pageLimit is the node's largest page (dataplane listMax); the
	// node also bounds a page by its metadata bytes.
	const pageLimit = 10000
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lists := make([][]Entry, len(ts))
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for i, t := range ts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var after []byte
			var held listHeld
			var ents []Entry
			for page := 0; ; page++ {
				req := wire.Request{Job: t.job, Key: []byte(prefix), Token: t.token, Epoch: t.epoch, After: after, Delimiter: delim, Limit: pageLimit}
				send := func() (client.Reply, error) {
					return j.listPatient(ctx, func() (client.Reply, error) {
						return j.s.data.Do(ctx, t.addr, wire.OpList, t.flags, &req, nil, nil)
					})
				}
				r, err := j.goneCheck(ctx, t.addr, true, func() (client.Reply, error) { return j.resendLost(ctx, wire.OpList, 0, send) })
				if j.holdsNone(err) {
					break // deregistered, and none of its persisted values here (or the node is gone)
				}
				if err == nil {
					err = listProgress(t.addr, req.Key, after, page > 0, &r.Meta, pageLimit)
				}
				if err == nil {
					err = held.add(t.addr, r.Meta.Entries)
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
						cancel()
					}
					mu.Unlock()
					return
				}
				for _, e := range r.Meta.Entries {
					if wire.IsChunkKey(e.Key) {
						continue
					}
					ents = append(ents, Entry{Name: string(e.Key), Size: e.Size, Dir: e.Dir})
				}
				n := len(r.Meta.Entries)
				if !r.Meta.More || n == 0 {
					break
				}
				after = nextAfter(r.Meta.Entries[n-1])
			}
			lists[i] = ents
		}()
	}
	wg.Wait()
	return lists, firstErr
}
