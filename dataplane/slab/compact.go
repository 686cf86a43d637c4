package slab

import "math/bits"

// Moving chunks out of a page
//
// A page goes back to the pool only when its last chunk is freed, so a
// class that once took many pages keeps each one a chunk of it is still
// in: an arena filled with values of one size and then mostly emptied
// refuses every other size while it is mostly free (a hostile trial: 24
// MiB of 100-byte values, 63 in 64 deleted, every other size refused at
// 1.6 % used). The arena cannot move a chunk itself (its owner holds
// offsets to it), so it offers its owner the means: Sparsest names the
// page whose chunks can all move to the other pages of its class, Fence
// keeps Alloc off it meanwhile, and Chunks lists what is in it. Once the
// owner has freed them all, the page is back in the pool (Free).

// Sparsest returns the page with the fewest chunks handed out, among the
// pages of every class whose other pages have as many free chunks (so its
// chunks can move there without a page from the pool), and that count;
// ok is false when no page qualifies. Fenced and full pages are skipped,
// and a fenced page's free chunks do not count as room.
func (a *Arena) Sparsest() (p int32, used int, ok bool) {
	best, bestUsed := int32(noPage), int32(-1)
	for ci := range a.classes {
		c := &a.classes[ci]
		c.mu.Lock()
		// Free chunks of the class in pages Alloc may use (on its list:
		// not full, not fenced).
		var free int64
		for q := c.partial; q != noPage; q = a.pages[q].next {
			free += int64(c.perPage - a.pages[q].used)
		}
		for q := c.partial; q != noPage; q = a.pages[q].next {
			pg := &a.pages[q]
			other := free - int64(c.perPage-pg.used) // free chunks in the class's other pages
			if int64(pg.used) <= other && (bestUsed < 0 || pg.used < bestUsed) {
				best, bestUsed = q, pg.used
			}
		}
		c.mu.Unlock()
	}
	return best, int(bestUsed), best != noPage
}

// Fence takes page p off its class's list of pages with free chunks, so
// Alloc hands out none of its chunks until Unfence, and reports whether
// it did (false: p is in the pool, or fenced already).
func (a *Arena) Fence(p int32) bool {
	if p < 0 || int(p) >= len(a.pages) {
		return false
	}
	ci := a.pages[p].owner.Load()
	if ci == noPage {
		return false
	}
	c := &a.classes[ci]
	c.mu.Lock()
	defer c.mu.Unlock()
	pg := &a.pages[p]
	if pg.owner.Load() != ci || pg.fenced {
		return false
	}
	if pg.used < c.perPage {
		a.unlinkPartial(c, p)
	}
	pg.fenced = true
	return true
}

// Unfence puts a fenced page p back on its class's list, unless its last
// chunk was freed meanwhile (it is in the pool then).
func (a *Arena) Unfence(p int32) {
	ci := a.pages[p].owner.Load()
	if ci == noPage {
		return
	}
	c := &a.classes[ci]
	c.mu.Lock()
	defer c.mu.Unlock()
	pg := &a.pages[p]
	if pg.owner.Load() != ci || !pg.fenced {
		return
	}
	pg.fenced = false
	if pg.used < c.perPage {
		a.pushPartial(c, p)
	}
}

// Chunks returns the arena offsets of the chunks handed out in page p.
func (a *Arena) Chunks(p int32) []int64 {
	ci := a.pages[p].owner.Load()
	if ci == noPage {
		return nil
	}
	c := &a.classes[ci]
	c.mu.Lock()
	defer c.mu.Unlock()
	if a.pages[p].owner.Load() != ci {
		return nil
	}
	var out []int64
	words := a.bitmap[int(p)*a.wpp : int(p)*a.wpp+int(c.words)]
	for w, x := range words {
		for x != 0 {
			bit := bits.TrailingZeros64(x)
			x &^= 1 << bit
			out = append(out, int64(p)<<a.pageShift+int64(w*64+bit)*int64(c.size))
		}
	}
	return out
}

// InPool reports whether page p is back in the pool.
func (a *Arena) InPool(p int32) bool { return a.pages[p].owner.Load() == noPage }

// FreePages is the number of pages in the pool.
func (a *Arena) FreePages() int {
	a.poolMu.Lock()
	defer a.poolMu.Unlock()
	return len(a.pool)
}
