package dataplane

import (
	"fmt"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// Many short listings of other jobs, each filing a snapshot, do not push
// out a long listing's snapshot between its pages: the cache drops the
// snapshot cheapest to take again (GreedyDual-Size), so the long listing
// takes one snapshot in all. On the old code (least recently used first)
// each page of the long listing took a new one: a hostile trial's ten
// jobs' one-name pages made a 300,000-name listing 21x slower.
func TestShortListingsDoNotEvictALongOne(t *testing.T) {
	listTestTiers(t, func(t *testing.T, tier Tier) {
		useListCache(t, newListSnaps(listSnapMaxBytes, listCacheMaxBytes, listCacheMaxSnaps, listCacheTTL, time.Now))
		ct := &countingTier{Tier: tier}
		for i := range 5000 {
			listPut(t, tier, "j", fmt.Sprintf("key-%06d", i), 1)
		}
		for a := range 10 {
			for k := range 2 {
				listPut(t, tier, fmt.Sprint("spy-", a), fmt.Sprint("k", k), 1)
			}
		}
		page := listPageOf(t, ct, wire.Request{Job: []byte("j"), Limit: 500})
		pages := 1
		for page.More {
			for a := range 10 { // each files a snapshot of its own job
				listPageOf(t, ct, wire.Request{Job: []byte(fmt.Sprint("spy-", a)), Limit: 1})
			}
			before := ct.lists.Load()
			page = listPageOf(t, ct, wire.Request{Job: []byte("j"), After: cursorAfter(page.Entries[len(page.Entries)-1]), Limit: 500})
			pages++
			if ct.lists.Load() != before {
				t.Fatalf("page %d of the long listing took a new snapshot after other jobs' short listings", pages)
			}
		}
		if pages != 10 {
			t.Fatalf("%d pages, want 10", pages)
		}
	})
}
