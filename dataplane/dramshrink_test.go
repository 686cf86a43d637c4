package dataplane

import (
	"errors"
	"fmt"
	"testing"
)

// putKeys stores n one-byte values of job in d, keys PREFIX-i, with flags.
func putKeys(t *testing.T, d *DRAM, job, prefix string, n int, flags PutFlags) {
	t.Helper()
	for i := range n {
		p, err := d.Create([]byte(job), fmt.Appendf(nil, "%s-%d", prefix, i), 1, Meta{Flags: flags})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDRAMIndexShrinks (hostile trial, 2026-12-07): the key tables of a
// job that deleted most of its keys, or whose revoked drop kept only its
// persisted ones, give their memory back. Before, tables only grew: ten
// jobs that each put 800,000 keys, deleted all but 2,000 and ended
// keeping them persisted held a node's whole index memory, and every
// other job's puts there were refused "no space" at 1.2 MiB used.
func TestDRAMIndexShrinks(t *testing.T) {
	d, err := NewDRAM(64<<20, DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	const n, kept = 40_000, 64
	base := d.idx.arena.Used()
	putKeys(t, d, "del", "k", n, 0)
	grown := d.idx.arena.Used() - base
	for i := kept; i < n; i++ {
		if _, err := d.Delete([]byte("del"), fmt.Appendf(nil, "k-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if left := d.idx.arena.Used() - base; left*16 > grown {
		t.Errorf("deleting %d of %d keys left %d of the index's %d bytes; want at most 1/16", n-kept, n, left, grown)
	}

	putKeys(t, d, "drop", "tmp", n, 0)
	putKeys(t, d, "drop", "kept", kept, Persist)
	before := d.idx.arena.Used()
	d.DropJob([]byte("drop"), true)
	if left := d.idx.arena.Used(); (left-base)*16 > before-base {
		t.Errorf("a revoked drop keeping %d persisted keys left %d index bytes of %d; want at most 1/16", kept, left-base, before-base)
	}
	for i := range kept {
		if _, err := d.Stat([]byte("drop"), fmt.Appendf(nil, "kept-%d", i)); err != nil {
			t.Fatalf("a kept key after the tables shrank: %v", err)
		}
	}
}

// TestKTableRegionsBounded: tables too large for an index page, mapped
// on their own, count against the index's capacity with what its arena
// holds, and are refused past it with the key index named. Before,
// nothing bounded them: a hostile trial grew a node by 131 MiB per ended
// job of 3.2 million keys, with 30 MiB of DRAM reported used.
func TestKTableRegionsBounded(t *testing.T) {
	m, err := newIndexMem(8 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	big := 2 * m.arena.MaxChunk() / kslotLen // a region of twice a page
	var chunks []indexChunk
	defer func() {
		for _, c := range chunks {
			m.free(c)
		}
	}()
	for range 64 {
		c, _, err := m.alloc(big)
		if err != nil {
			if !errors.Is(err, ErrNoSpace) || err != error(errIndexFull) {
				t.Fatalf("a region past the index's capacity: %v, want the key index full", err)
			}
			if m.regions.Load() > m.arena.Capacity() {
				t.Fatalf("regions hold %d bytes past the index's capacity %d", m.regions.Load(), m.arena.Capacity())
			}
			return
		}
		chunks = append(chunks, c)
	}
	t.Fatalf("%d regions of %d bytes taken on an index of %d bytes", len(chunks), big*kslotLen, m.arena.Capacity())
}

// TestDRAMIndexShrinksUnderAQuarter (hostile re-check, 2026-12-07): a
// table under 1/4 full shrinks, so a key costs the index at most 64 bytes.
// Halved only under 1/8, a re-check's live jobs deleted down to just
// above it filled the index at 68% of the tier used.
func TestDRAMIndexShrinksUnderAQuarter(t *testing.T) {
	d, err := NewDRAM(64<<20, DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	const n, kept = 40_000, 11_200 // about 700 of 2,500 keys per table of 4,096 slots
	base := d.idx.arena.Used()
	putKeys(t, d, "part", "k", n, 0)
	grown := d.idx.arena.Used() - base
	for i := kept; i < n; i++ {
		if _, err := d.Delete([]byte("part"), fmt.Appendf(nil, "k-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if left := d.idx.arena.Used() - base; left*16 > grown*9 {
		t.Errorf("deleting to %d of %d keys left %d of the index's %d bytes; want about half", kept, n, left, grown)
	}
}

// TestKTableArenaCountsRegions: once regions hold the index's capacity,
// a table in the index arena is refused too. Before, only regions were
// checked, against what the arena held then, and the arena grew on.
func TestKTableArenaCountsRegions(t *testing.T) {
	m, err := newIndexMem(8 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	big := 2 * m.arena.MaxChunk() / kslotLen
	var chunks []indexChunk
	defer func() {
		for _, c := range chunks {
			m.free(c)
		}
	}()
	for {
		c, _, err := m.alloc(big)
		if err != nil {
			break
		}
		chunks = append(chunks, c)
	}
	if _, _, err := m.alloc(m.arena.MaxChunk() / kslotLen); err != error(errIndexFull) {
		t.Fatalf("an arena table beside %d bytes of regions on an index of %d: %v, want the key index full", m.regions.Load(), m.arena.Capacity(), err)
	}
}
