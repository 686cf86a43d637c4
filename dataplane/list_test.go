package dataplane

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/nvme"
	"github.com/pocketstore/pocket/wire"
)

// The paged listing (list.go): every key exactly once and in order across
// many pages while keys are deleted, created and overwritten between the
// pages; a key deleted before its page is served is never listed; sizes
// are current; one snapshot per listing however many pages it has; the
// cache's bounds (snapshot size, count, age) change costs, never results.

// listTestTiers runs fn on a DRAM tier and, where the file system takes
// direct I/O, an NVMe tier.
func listTestTiers(t *testing.T, fn func(t *testing.T, tier Tier)) {
	t.Run("dram", func(t *testing.T) {
		d, err := NewDRAM(64<<20, DRAMOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		fn(t, d)
	})
	t.Run("nvme", func(t *testing.T) {
		fn(t, fileNVMe(t, nvme.Options{Size: 64 << 20, BufferPool: 16 << 20, Engine: nvme.EngineSync}, NVMeOptions{}))
	})
}

func listPut(t testing.TB, tier Tier, job, key string, size int) {
	t.Helper()
	p, err := tier.Create([]byte(job), []byte(key), int64(size), Meta{})
	if err != nil {
		t.Fatalf("create %q: %v", key, err)
	}
	for _, b := range p.Buffers() {
		clear(b)
	}
	if _, err := p.Commit(); err != nil {
		t.Fatalf("commit %q: %v", key, err)
	}
}

// listModel is what the tier holds for one job: key -> size.
type listModel map[string]int

func (m listModel) put(t testing.TB, tier Tier, key string, size int) {
	listPut(t, tier, "j", key, size)
	m[key] = size
}

func (m listModel) del(t testing.TB, tier Tier, key string) {
	if _, err := tier.Delete([]byte("j"), []byte(key)); err != nil {
		t.Fatalf("delete %q: %v", key, err)
	}
	delete(m, key)
}

// randomKey picks one of the model's keys (in a fixed order, for
// reproducible tests).
func (m listModel) randomKey(r *rand.Rand) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys[r.IntN(len(keys))]
}

// listPageOf serves one page straight from list, as the node does.
func listPageOf(t testing.TB, tier Tier, req wire.Request) *wire.Response {
	t.Helper()
	resp, err := list(tier, &req)
	if err != nil {
		t.Fatalf("list after %q: %v", req.After, err)
	}
	return resp
}

// cursorAfter is the SDK's cursor after a page (pocket/dir.go nextAfter).
func cursorAfter(e wire.Entry) []byte {
	k := append([]byte(nil), e.Key...)
	if e.Dir {
		k = append(k, 0xFF)
	}
	return k
}

// useListCache replaces the node's listing cache for one test.
func useListCache(t *testing.T, c *listSnaps) *listSnaps {
	old := listCache.Swap(c)
	t.Cleanup(func() { listCache.Store(old) })
	return c
}

// countingTier counts List and Stat calls: with no listScan of its own,
// it makes every snapshot go through List.
type countingTier struct {
	Tier
	lists, stats atomic.Int64
}

func (c *countingTier) Stat(job, key []byte) (Info, error) {
	c.stats.Add(1)
	return c.Tier.Stat(job, key)
}

func (c *countingTier) List(job, prefix, after []byte, fn func([]byte, Info) bool) error {
	c.lists.Add(1)
	return c.Tier.List(job, prefix, after, fn)
}

// pagedListing lists the job's keys under prefix page by page while mutate
// changes the model between pages, and checks every page against the model
// as it was when the page was served: entries in ascending order across all
// pages (so none twice), each one present then with its current size, and
// every key present throughout listed. It returns the pages taken.
func pagedListing(t *testing.T, tier Tier, m listModel, prefix string, limit int, mutate func(page int)) int {
	t.Helper()
	stable := map[string]bool{} // present from start to end
	for k := range m {
		if strings.HasPrefix(k, prefix) && !wire.IsChunkKey([]byte(k)) {
			stable[k] = true
		}
	}
	var after, prev []byte
	pages := 0
	for {
		resp := listPageOf(t, tier, wire.Request{Job: []byte("j"), Key: []byte(prefix), After: after, Limit: uint32(limit)})
		pages++
		if len(resp.Entries) > limit {
			t.Fatalf("page %d: %d entries over the limit %d", pages, len(resp.Entries), limit)
		}
		for _, e := range resp.Entries {
			k := string(e.Key)
			if prev != nil && bytes.Compare(e.Key, prev) <= 0 {
				t.Fatalf("page %d: %q listed after %q", pages, e.Key, prev)
			}
			prev = append(prev[:0], e.Key...)
			size, ok := m[k]
			if !ok {
				t.Fatalf("page %d: %q listed but not present when the page was served", pages, k)
			}
			if e.Size != int64(size) || e.Dir {
				t.Fatalf("page %d: %q size %d dir %v, want %d", pages, k, e.Size, e.Dir, size)
			}
			if !strings.HasPrefix(k, prefix) || wire.IsChunkKey(e.Key) {
				t.Fatalf("page %d: %q listed under prefix %q", pages, k, prefix)
			}
			delete(stable, k)
		}
		if !resp.More {
			break
		}
		if len(resp.Entries) == 0 {
			t.Fatalf("page %d: More with no entries", pages)
		}
		after = cursorAfter(resp.Entries[len(resp.Entries)-1])
		mutate(pages)
		for k := range stable {
			if _, ok := m[k]; !ok {
				delete(stable, k)
			}
		}
	}
	for k := range stable {
		t.Errorf("%q present throughout the listing but never listed", k)
	}
	return pages
}

// fullListing is a listing with no changes meanwhile: exactly the model.
func fullListing(t *testing.T, tier Tier, m listModel, prefix string, limit int) {
	t.Helper()
	var want []string
	for k := range m {
		if strings.HasPrefix(k, prefix) && !wire.IsChunkKey([]byte(k)) {
			want = append(want, k)
		}
	}
	sort.Strings(want)
	var got []string
	var after []byte
	for {
		resp := listPageOf(t, tier, wire.Request{Job: []byte("j"), Key: []byte(prefix), After: after, Limit: uint32(limit)})
		for _, e := range resp.Entries {
			got = append(got, string(e.Key))
		}
		if !resp.More {
			break
		}
		after = cursorAfter(resp.Entries[len(resp.Entries)-1])
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listing of %q: %d keys, want %d\n got %.300q\nwant %.300q", prefix, len(got), len(want), got, want)
	}
}

func TestListPagesWhileChanging(t *testing.T) {
	listTestTiers(t, func(t *testing.T, tier Tier) {
		r := rand.New(rand.NewPCG(1, 2))
		m := listModel{}
		for i := 0; i < 3000; i++ {
			m.put(t, tier, fmt.Sprintf("k/%05d", i*2), 1+i%50)
		}
		// Chunk keys and keys outside the prefix are never listed.
		for i := 0; i < 50; i++ {
			m.put(t, tier, string(wire.AppendChunkKey(nil, fmt.Appendf(nil, "k/%05d", i*2), 7, 1)), 3)
			m.put(t, tier, fmt.Sprintf("other/%d", i), 3)
		}
		var listed, deletedAhead int
		pages := pagedListing(t, tier, m, "k/", 97, func(page int) {
			for i := 0; i < 10; i++ {
				// Deletions anywhere, most of them of keys not yet
				// listed (the snapshot still has them).
				k := m.randomKey(r)
				if strings.HasPrefix(k, "k/") && !wire.IsChunkKey([]byte(k)) {
					deletedAhead++
				}
				m.del(t, tier, k)
				// New keys between old ones, before and after the
				// cursor; a listing may or may not see them.
				m.put(t, tier, fmt.Sprintf("k/%05d", r.IntN(3000)*2+1), 1+r.IntN(50))
				// Overwrites: the size listed is the current one.
				m.put(t, tier, m.randomKey(r), 100+r.IntN(50))
			}
			listed++
		})
		if pages < 30 || deletedAhead < 100 {
			t.Fatalf("%d pages, %d deletions: the test did not exercise paging", pages, deletedAhead)
		}
		// A new listing sees exactly what is there now.
		fullListing(t, tier, m, "k/", 97)
		fullListing(t, tier, m, "", 1000)
	})
}

// A key deleted right before the page that would list it is not listed,
// even at the very start of a page; its neighbours are.
func TestListDeletedBeforeItsPage(t *testing.T) {
	listTestTiers(t, func(t *testing.T, tier Tier) {
		m := listModel{}
		for i := 0; i < 100; i++ {
			m.put(t, tier, fmt.Sprintf("%03d", i), 1)
		}
		resp := listPageOf(t, tier, wire.Request{Job: []byte("j"), Limit: 10})
		if len(resp.Entries) != 10 || string(resp.Entries[9].Key) != "009" || !resp.More {
			t.Fatalf("first page: %d entries, More %v", len(resp.Entries), resp.More)
		}
		for _, k := range []string{"010", "011", "015", "019", "020", "099"} {
			m.del(t, tier, k)
		}
		resp = listPageOf(t, tier, wire.Request{Job: []byte("j"), After: []byte("009"), Limit: 10})
		var got []string
		for _, e := range resp.Entries {
			got = append(got, string(e.Key))
		}
		want := []string{"012", "013", "014", "016", "017", "018", "021", "022", "023", "024"}
		if !slices.Equal(got, want) {
			t.Fatalf("second page %q, want %q", got, want)
		}
		// The last page: 099 deleted, so 098 ends the listing with no
		// More (no empty page after it).
		resp = listPageOf(t, tier, wire.Request{Job: []byte("j"), After: []byte("089"), Limit: 9})
		if len(resp.Entries) != 9 || string(resp.Entries[8].Key) != "098" || resp.More {
			t.Fatalf("last page: %d entries, More %v", len(resp.Entries), resp.More)
		}
	})
}

// Directory entries (a delimiter): each directory once, across pages, while
// whole directories go and come; a directory whose keys are all gone by its
// page is not listed.
func TestListDirectoriesWhileChanging(t *testing.T) {
	listTestTiers(t, func(t *testing.T, tier Tier) {
		m := listModel{}
		for d := 0; d < 60; d++ {
			for f := 0; f < 20; f++ {
				m.put(t, tier, fmt.Sprintf("r/d%02d/f%02d", d, f), 1)
			}
			m.put(t, tier, fmt.Sprintf("r/f%02d", d), 2+d)
		}
		m.put(t, tier, "r/d07/sub/deeper", 1)
		var after, prev []byte
		var got []string
		for page := 0; ; page++ {
			resp := listPageOf(t, tier, wire.Request{Job: []byte("j"), Key: []byte("r/"), After: after, Delimiter: '/', Limit: 7})
			for _, e := range resp.Entries {
				if prev != nil && bytes.Compare(e.Key, prev) <= 0 {
					t.Fatalf("%q listed after %q", e.Key, prev)
				}
				prev = append(prev[:0], e.Key...)
				present := false
				for k, size := range m {
					if e.Dir && strings.HasPrefix(k, string(e.Key)) || !e.Dir && k == string(e.Key) && int64(size) == e.Size {
						present = true
						break
					}
				}
				if !present {
					t.Fatalf("%q (dir %v size %d) listed but not present", e.Key, e.Dir, e.Size)
				}
				got = append(got, string(e.Key))
			}
			if !resp.More {
				break
			}
			after = cursorAfter(resp.Entries[len(resp.Entries)-1])
			if page == 2 {
				// Remove every key of d40..d44 (not listed yet) and
				// add d40b, after the cursor.
				for d := 40; d < 45; d++ {
					for f := 0; f < 20; f++ {
						m.del(t, tier, fmt.Sprintf("r/d%02d/f%02d", d, f))
					}
				}
				m.put(t, tier, "r/d40b/x", 1)
			}
		}
		var want []string
		for d := 0; d < 60; d++ {
			if d < 40 || d >= 45 {
				want = append(want, fmt.Sprintf("r/d%02d/", d))
			}
			want = append(want, fmt.Sprintf("r/f%02d", d))
		}
		sort.Strings(want)
		// d40b/ was created during the listing: it may be missed.
		got = slices.DeleteFunc(got, func(k string) bool { return k == "r/d40b/" })
		if !slices.Equal(got, want) {
			t.Fatalf("listing\n got %q\nwant %q", got, want)
		}
	})
}

// One snapshot per listing: the pages after the first continue in it.
func TestListOneSnapshotPerListing(t *testing.T) {
	listTestTiers(t, func(t *testing.T, tier Tier) {
		useListCache(t, newListSnaps(listSnapMaxBytes, listCacheMaxBytes, listCacheMaxSnaps, listCacheTTL, time.Now))
		ct := &countingTier{Tier: tier}
		m := listModel{}
		for i := 0; i < 2000; i++ {
			m.put(t, tier, fmt.Sprintf("key-%06d", i), 1)
		}
		if pages := pagedListing(t, ct, m, "", 50, func(int) {}); pages != 40 {
			t.Fatalf("%d pages, want 40", pages)
		}
		if n := ct.lists.Load(); n != 1 {
			t.Fatalf("%d snapshots for one listing, want 1", n)
		}
		// The listing ended: its snapshot is gone.
		if c := listCache.Load(); len(c.snaps) != 0 || len(c.cursors) != 0 {
			t.Fatalf("cache holds %d snapshots, %d cursors after the listing", len(c.snaps), len(c.cursors))
		}
		// A cursor the node did not hand out starts a fresh snapshot
		// (of the keys after it) and gets the same results.
		resp := listPageOf(t, ct, wire.Request{Job: []byte("j"), After: []byte("key-001234"), Limit: 3})
		if len(resp.Entries) != 3 || string(resp.Entries[0].Key) != "key-001235" || ct.lists.Load() != 2 {
			t.Fatalf("page after an unknown cursor: %+v (%d snapshots)", resp.Entries, ct.lists.Load())
		}
		// Two listings at once each keep their own snapshot.
		before := ct.lists.Load()
		a := listPageOf(t, ct, wire.Request{Job: []byte("j"), Limit: 10})
		b := listPageOf(t, ct, wire.Request{Job: []byte("j"), Limit: 20})
		for i := 0; i < 5; i++ {
			a = listPageOf(t, ct, wire.Request{Job: []byte("j"), After: cursorAfter(a.Entries[len(a.Entries)-1]), Limit: 10})
			b = listPageOf(t, ct, wire.Request{Job: []byte("j"), After: cursorAfter(b.Entries[len(b.Entries)-1]), Limit: 20})
		}
		if n := ct.lists.Load() - before; n != 2 || string(a.Entries[9].Key) != "key-000059" || string(b.Entries[19].Key) != "key-000119" {
			t.Fatalf("two listings: %d snapshots, pages ending %q %q", n, a.Entries[9].Key, b.Entries[19].Key)
		}
		// A directory entry costs one Stat, not one per key in it.
		for i := 0; i < 1000; i++ {
			m.put(t, tier, fmt.Sprintf("dir/%04d", i), 1)
		}
		ct.stats.Store(0)
		resp = listPageOf(t, ct, wire.Request{Job: []byte("j"), Key: []byte("d"), Delimiter: '/'})
		if len(resp.Entries) != 1 || !resp.Entries[0].Dir || ct.stats.Load() != 1 {
			t.Fatalf("directory listing %+v: %d stats", resp.Entries, ct.stats.Load())
		}
	})
}

// Snapshots bounded in bytes hold the first names only; the listing takes
// the next snapshot when it reaches the end of one, and gets every key.
func TestListSnapshotBound(t *testing.T) {
	listTestTiers(t, func(t *testing.T, tier Tier) {
		// 16 names of 10 bytes (+4 each) per snapshot.
		useListCache(t, newListSnaps(16*14, 1<<20, 8, time.Minute, time.Now))
		ct := &countingTier{Tier: tier}
		m := listModel{}
		for i := 0; i < 500; i++ {
			m.put(t, tier, fmt.Sprintf("key-%06d", i), 1)
		}
		r := rand.New(rand.NewPCG(3, 4))
		pagedListing(t, ct, m, "", 7, func(int) {
			m.del(t, tier, m.randomKey(r))
			m.put(t, tier, fmt.Sprintf("key-%06d+", r.IntN(500)), 2)
		})
		if n := ct.lists.Load(); n < 500/16 || n > 500/16+3 {
			t.Fatalf("%d snapshots for 500 keys, 16 a snapshot", n)
		}
		fullListing(t, tier, m, "", 7)
		fullListing(t, tier, m, "key-0001", 3)
		// A delimiter listing across snapshot bounds: a directory
		// spanning snapshots is listed once.
		for i := 0; i < 100; i++ {
			m.put(t, tier, fmt.Sprintf("dir/%06d", i), 1)
		}
		var got []string
		var after []byte
		for {
			resp := listPageOf(t, tier, wire.Request{Job: []byte("j"), After: after, Delimiter: '/', Limit: 2})
			for _, e := range resp.Entries {
				if e.Dir {
					got = append(got, string(e.Key))
				}
			}
			if !resp.More {
				break
			}
			after = cursorAfter(resp.Entries[len(resp.Entries)-1])
		}
		if !slices.Equal(got, []string{"dir/"}) {
			t.Fatalf("directories %q", got)
		}
	})
}

// The cache's count and age bounds: a listing whose snapshot was dropped
// takes a fresh one from its cursor and loses nothing.
func TestListCacheEvictionAndExpiry(t *testing.T) {
	d, err := NewDRAM(16<<20, DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c := useListCache(t, newListSnaps(1<<20, 1<<20, 2, 30*time.Second, clock))
	ct := &countingTier{Tier: d}
	for i := 0; i < 100; i++ {
		for _, p := range []string{"a", "b", "c"} {
			listPut(t, d, "j", fmt.Sprintf("%s%03d", p, i), 1)
		}
	}
	first := func(prefix string) []byte {
		resp := listPageOf(t, ct, wire.Request{Job: []byte("j"), Key: []byte(prefix), Limit: 10})
		return cursorAfter(resp.Entries[9])
	}
	next := func(prefix string, after []byte, want string) []byte {
		t.Helper()
		resp := listPageOf(t, ct, wire.Request{Job: []byte("j"), Key: []byte(prefix), After: after, Limit: 10})
		if string(resp.Entries[0].Key) != want {
			t.Fatalf("page of %q after %q starts at %q, want %q", prefix, after, resp.Entries[0].Key, want)
		}
		return cursorAfter(resp.Entries[9])
	}
	ca, cb := first("a"), first("b")
	cc := first("c") // evicts a's snapshot: two at most
	if len(c.snaps) != 2 || ct.lists.Load() != 3 {
		t.Fatalf("%d snapshots cached, %d taken", len(c.snaps), ct.lists.Load())
	}
	cb = next("b", cb, "b010")
	cc = next("c", cc, "c010")
	if ct.lists.Load() != 3 {
		t.Fatalf("cached listings took %d snapshots, want 3", ct.lists.Load())
	}
	ca = next("a", ca, "a010") // fresh snapshot, evicting b's (least recently used)
	if ct.lists.Load() != 4 {
		t.Fatalf("evicted listing: %d snapshots, want 4", ct.lists.Load())
	}
	_ = next("c", cc, "c020")
	if ct.lists.Load() != 4 {
		t.Fatalf("c's snapshot was evicted instead of b's")
	}
	mu.Lock()
	now = now.Add(31 * time.Second)
	mu.Unlock()
	_ = next("a", ca, "a020") // expired: fresh snapshot
	if ct.lists.Load() != 5 {
		t.Fatalf("expired listing: %d snapshots, want 5", ct.lists.Load())
	}
	if len(c.snaps) != 1 {
		t.Fatalf("%d snapshots cached after expiry, want 1", len(c.snaps))
	}
	_ = cb
}

// A tier of a type that cannot be a map key is listed with no snapshot
// kept, page by page as before.
type uncomparableTier struct {
	Tier
	_ []int
}

func TestListUncomparableTier(t *testing.T) {
	d, err := NewDRAM(16<<20, DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	m := listModel{}
	for i := 0; i < 300; i++ {
		m.put(t, d, fmt.Sprintf("k%04d", i), 1)
	}
	fullListing(t, uncomparableTier{Tier: d}, m, "", 7)
	fullListing(t, NewFaulty(d), m, "k01", 7)
}

// Listings and changes at once, under the race detector: each listing in
// order with no key twice, and every key never deleted listed.
func TestListConcurrent(t *testing.T) {
	d, err := NewDRAM(64<<20, DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	const keep = 1000 // k-even keys stay; odd ones come and go
	for i := 0; i < keep; i++ {
		listPut(t, d, "j", fmt.Sprintf("k%05d", 2*i), 1)
	}
	stop := make(chan struct{})
	var writer, listers sync.WaitGroup
	writer.Add(1)
	go func() {
		defer writer.Done()
		r := rand.New(rand.NewPCG(5, 6))
		for {
			select {
			case <-stop:
				return
			default:
			}
			k := fmt.Appendf(nil, "k%05d", 2*r.IntN(keep)+1)
			if r.IntN(2) == 0 {
				p, err := d.Create([]byte("j"), k, 1, Meta{})
				if err == nil {
					p.Buffers()[0][0] = 1
					_, _ = p.Commit()
				}
			} else {
				_, _ = d.Delete([]byte("j"), k)
			}
		}
	}()
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		listers.Add(1)
		go func() {
			defer listers.Done()
			for round := 0; round < 5; round++ {
				var after, prev []byte
				even := 0
				for {
					resp, err := list(d, &wire.Request{Job: []byte("j"), After: after, Limit: uint32(10 + g*7)})
					if err != nil {
						errs <- err
						return
					}
					for _, e := range resp.Entries {
						if prev != nil && bytes.Compare(e.Key, prev) <= 0 {
							errs <- fmt.Errorf("%q after %q", e.Key, prev)
							return
						}
						prev = append(prev[:0], e.Key...)
						if (e.Key[len(e.Key)-1]-'0')%2 == 0 {
							even++
						}
					}
					if !resp.More {
						break
					}
					after = cursorAfter(resp.Entries[len(resp.Entries)-1])
				}
				if even != keep {
					errs <- fmt.Errorf("listed %d of the %d keys never deleted", even, keep)
					return
				}
			}
		}()
	}
	listers.Wait()
	close(stop)
	writer.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// The multikey sort orders like bytes.Compare, for names sharing prefixes
// of every length, holding 0x00 and 0xFF, and prefixes of one another.
func TestSortListRefs(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	alphabet := []byte{0, 1, 'a', 'b', 0xFE, 0xFF}
	for round := 0; round < 200; round++ {
		seen := map[string]bool{}
		var buf []byte
		var refs []listRef
		base := make([]byte, r.IntN(30))
		for i := range base {
			base[i] = alphabet[r.IntN(len(alphabet))]
		}
		for i := 0; i < 1+r.IntN(300); i++ {
			k := append([]byte(nil), base[:r.IntN(len(base)+1)]...)
			for n := r.IntN(20); n > 0; n-- {
				k = append(k, alphabet[r.IntN(len(alphabet))])
			}
			if len(k) == 0 || seen[string(k)] {
				continue
			}
			seen[string(k)] = true
			refs = append(refs, listRef{off: len(buf), n: len(k)})
			buf = append(buf, k...)
		}
		want := slices.Clone(refs)
		slices.SortFunc(want, func(a, b listRef) int {
			return bytes.Compare(buf[a.off:a.off+a.n], buf[b.off:b.off+b.n])
		})
		sortListRefs(buf, refs, 0)
		for i := range refs {
			if refs[i].off != want[i].off {
				t.Fatalf("round %d: name %d is %q, want %q", round, i, buf[refs[i].off:refs[i].off+refs[i].n], buf[want[i].off:want[i].off+want[i].n])
			}
		}
	}
}

// Two listings meeting at one cursor continue in the later snapshot (never
// in one taken before the later listing began); a timer drops snapshots
// no listing comes back for.
func TestListCacheSharedCursorAndSweep(t *testing.T) {
	d, err := NewDRAM(16<<20, DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	c := useListCache(t, newListSnaps(1<<20, 1<<20, 8, 50*time.Millisecond, time.Now))
	for i := 0; i < 100; i++ {
		listPut(t, d, "j", fmt.Sprintf("k%03d", i), 1)
	}
	a := listPageOf(t, d, wire.Request{Job: []byte("j"), Limit: 10})
	listPut(t, d, "j", "k050+", 1) // after a began, before b
	b := listPageOf(t, d, wire.Request{Job: []byte("j"), Limit: 10})
	if string(a.Entries[9].Key) != "k009" || string(b.Entries[9].Key) != "k009" {
		t.Fatalf("pages end at %q and %q", a.Entries[9].Key, b.Entries[9].Key)
	}
	c.mu.Lock()
	snap := c.cursors[listCursor{d, "j", "", "k009"}]
	later := snap == c.snaps[len(c.snaps)-1] && len(c.snaps) == 2
	c.mu.Unlock()
	if !later {
		t.Fatalf("the shared cursor is not filed under the later snapshot")
	}
	// a continues in b's snapshot, which has k050+.
	after := []byte("k009")
	var got []string
	for {
		resp := listPageOf(t, d, wire.Request{Job: []byte("j"), After: after, Limit: 10})
		for _, e := range resp.Entries {
			got = append(got, string(e.Key))
		}
		if !resp.More {
			break
		}
		after = resp.Entries[len(resp.Entries)-1].Key
	}
	if len(got) != 91 || !slices.Contains(got, "k050+") {
		t.Fatalf("listing continued with %d keys", len(got))
	}
	// The listing ended and dropped its snapshot; the other one (a's,
	// no longer filed under any cursor) goes with the sweep.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		n, timer := len(c.snaps), c.sweeper
		c.mu.Unlock()
		if n == 0 && timer == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d snapshots still kept after the ttl", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestScanKeysAgreesWithList: on each tier, scanKeys visits exactly the
// keys and infos List gives, for any prefix and `after`, in whatever
// order, allocating nothing per key; bad jobs give ErrBadKey as List does.
func TestScanKeysAgreesWithList(t *testing.T) {
	listTestTiers(t, func(t *testing.T, tier Tier) {
		for i := 0; i < 500; i++ {
			listPut(t, tier, "j", fmt.Sprintf("%s/%04d", []string{"a", "b", "ab"}[i%3], i), i%7)
		}
		listPut(t, tier, "other", "a/x", 1)
		for _, q := range []struct{ prefix, after string }{{"", ""}, {"a", ""}, {"a/", "a/0100"}, {"", "b/"}, {"zz", ""}} {
			want := map[string]Info{}
			_ = tier.List([]byte("j"), []byte(q.prefix), []byte(q.after), func(k []byte, info Info) bool {
				want[string(k)] = info
				return true
			})
			got := map[string]Info{}
			err := scanKeys(tier, []byte("j"), []byte(q.prefix), []byte(q.after), func(k []byte, info Info) {
				if _, dup := got[string(k)]; dup {
					t.Errorf("%+v: %q visited twice", q, k)
				}
				got[string(k)] = info
			})
			if err != nil || !maps.Equal(got, want) {
				t.Fatalf("%+v: scan gave %d keys (err %v), List %d", q, len(got), err, len(want))
			}
		}
		var n int
		allocs := testing.AllocsPerRun(10, func() {
			n = 0
			_ = scanKeys(tier, []byte("j"), nil, nil, func([]byte, Info) { n++ })
		})
		if n != 500 || allocs > 2 {
			t.Fatalf("a scan of %d keys allocated %.0f times", n, allocs)
		}
		if err := scanKeys(tier, nil, nil, nil, func([]byte, Info) {}); !errors.Is(err, ErrBadKey) {
			t.Fatalf("scan of an empty job: %v", err)
		}
	})
}
