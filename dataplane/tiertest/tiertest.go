// Package tiertest is the conformance suite every dataplane.Tier runs: the
// DRAM tier, the NVMe tier and the fault-injecting wrapper (with no faults
// armed). A tier package calls Run from its own test:
//
//	func TestTier(t *testing.T) {
//		tiertest.Run(t, func(t *testing.T, capacity int64) dataplane.Tier {
//			d, err := dataplane.NewDRAM(capacity, dataplane.DRAMOptions{})
//			if err != nil {
//				t.Fatal(err)
//			}
//			return d
//		})
//	}
//
// newTier must return an empty tier holding at least capacity bytes (it may
// round up) that accepts the wire protocol's default key and job limits. The
// suite closes every tier it creates. It checks behaviour through the Tier
// interface only, so what it proves holds for every implementation: byte
// exact round trips of every size class boundary and of multi-chunk values,
// overwrite, delete, ErrNotFound and ErrBadKey, Create+Abort, a full tier
// that refuses with ErrNoSpace and loses nothing, open references that
// outlive delete and overwrite, List order, DropJob, usage accounting and
// concurrent use under -race.
package tiertest

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/pocketstore/pocket/dataplane"
)

// NewTier makes an empty tier of at least capacity bytes for one test.
type NewTier func(t *testing.T, capacity int64) dataplane.Tier

// Capacities the suite asks for.
const (
	bigCapacity  = 64 << 20
	fullCapacity = 8 << 20
)

// Run runs the whole suite, each check as a subtest with its own tier.
func Run(t *testing.T, newTier NewTier) {
	tests := []struct {
		name string
		fn   func(*testing.T, NewTier)
	}{
		{"RoundTrip", testRoundTrip},
		{"Overwrite", testOverwrite},
		{"Delete", testDelete},
		{"NotFound", testNotFound},
		{"BadKeys", testBadKeys},
		{"JobsAreSeparate", testJobsAreSeparate},
		{"CreateAbort", testCreateAbort},
		{"TooLarge", testTooLarge},
		{"Full", testFull},
		{"OpenOutlivesDelete", testOpenOutlivesDelete},
		{"List", testList},
		{"DropJob", testDropJob},
		{"UsageReturnsToZero", testUsageReturnsToZero},
		{"Concurrent", testConcurrent},
		{"Close", testClose},
		{"Versions", testVersions},
		{"IfAbsent", testIfAbsent},
		{"DeleteVersion", testDeleteVersion},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newTier) })
	}
}

// open makes a tier and closes it when the test ends.
func open(t *testing.T, newTier NewTier, capacity int64) dataplane.Tier {
	t.Helper()
	tier := newTier(t, capacity)
	if tier == nil {
		t.Fatal("newTier returned nil")
	}
	t.Cleanup(func() { _ = tier.Close() })
	return tier
}

// pattern fills a value with bytes derived from seed, so any reader can
// check it without keeping a copy.
func pattern(size int, seed uint64) []byte {
	b := make([]byte, size)
	x := seed*0x9E3779B97F4A7C15 + 1
	for i := range b {
		if i%8 == 0 {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
		}
		b[i] = byte(x >> (8 * (i % 8)))
	}
	return b
}

// put stores data under (job, key) through Create, Buffers and Commit.
func put(tier dataplane.Tier, job, key string, data []byte, flags dataplane.PutFlags) error {
	_, err := putMeta(tier, job, key, data, dataplane.Meta{Flags: flags})
	return err
}

// putMeta is put with a whole Meta; it returns the replaced value's Info.
func putMeta(tier dataplane.Tier, job, key string, data []byte, m dataplane.Meta) (dataplane.Info, error) {
	p, err := tier.Create([]byte(job), []byte(key), int64(len(data)), m)
	if err != nil {
		return dataplane.Info{}, err
	}
	rest := data
	for _, b := range p.Buffers() {
		if len(b) > len(rest) {
			p.Abort()
			return dataplane.Info{}, fmt.Errorf("buffers total more than the %d-byte size", len(data))
		}
		rest = rest[copy(b, rest):]
	}
	if len(rest) != 0 {
		p.Abort()
		return dataplane.Info{}, fmt.Errorf("buffers total %d bytes short of the %d-byte size", len(rest), len(data))
	}
	return p.Commit()
}

func mustPut(t *testing.T, tier dataplane.Tier, job, key string, data []byte, flags dataplane.PutFlags) {
	t.Helper()
	if err := put(tier, job, key, data, flags); err != nil {
		t.Fatalf("put %s/%s (%d bytes): %v", job, key, len(data), err)
	}
}

// get reads a value through Open, checking Size against the segments.
func get(tier dataplane.Tier, job, key string) ([]byte, dataplane.PutFlags, error) {
	v, err := tier.Open([]byte(job), []byte(key))
	if err != nil {
		return nil, 0, err
	}
	defer v.Release()
	var out []byte
	for _, s := range v.Segments() {
		out = append(out, s...)
	}
	if int64(len(out)) != v.Size() {
		return nil, 0, fmt.Errorf("segments total %d bytes, Size says %d", len(out), v.Size())
	}
	return out, v.Flags(), nil
}

func mustGet(t *testing.T, tier dataplane.Tier, job, key string, want []byte) {
	t.Helper()
	got, _, err := get(tier, job, key)
	if err != nil {
		t.Fatalf("get %s/%s: %v", job, key, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("get %s/%s: %d bytes differ from the %d put", job, key, len(got), len(want))
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: error %v, want %v", what, err, want)
	}
}

// sizes are the round-trip sizes: empty, tiny, the slab class and 4 KiB
// boundaries, and multi-chunk values.
var sizes = []int{0, 1, 15, 16, 63, 64, 65, 100, 1000, 1023, 1024, 1025, 4095, 4096, 4097,
	5000, 8191, 8192, 65535, 65536, 65537, 300 << 10, 1<<20 - 1, 1 << 20, 1<<20 + 1,
	2<<20 - 1, 2 << 20, 2<<20 + 1, 5<<20 + 3}

func testRoundTrip(t *testing.T, newTier NewTier) {
	tier := open(t, newTier, bigCapacity)
	for i, n := range sizes {
		key := fmt.Sprintf("k%d", n)
		data := pattern(n, uint64(i))
		flags := dataplane.PutFlags(0)
		if i%2 == 1 {
			flags = dataplane.Persist
		}
		mustPut(t, tier, "job", key, data, flags)
		mustGet(t, tier, "job", key, data)
		info, err := tier.Stat([]byte("job"), []byte(key))
		if err != nil || info.Size != int64(n) || info.Flags != flags {
			t.Fatalf("Stat %s = %+v, %v; want size %d flags %d", key, info, err, n, flags)
		}
	}
	// All still intact once everything is stored.
	for i, n := range sizes {
		mustGet(t, tier, "job", fmt.Sprintf("k%d", n), pattern(n, uint64(i)))
	}
	if u := tier.Usage(); u.Values != int64(len(sizes)) {
		t.Fatalf("Usage.Values %d, want %d", u.Values, len(sizes))
	}
}

func testOverwrite(t *testing.T, newTier NewTier) {
	tier := open(t, newTier, bigCapacity)
	a, b, c := pattern(100, 1), pattern(3<<20+5, 2), pattern(10, 3)
	mustPut(t, tier, "j", "k", a, 0)
	mustPut(t, tier, "j", "k", b, dataplane.Persist)
	mustGet(t, tier, "j", "k", b)
	if info, _ := tier.Stat([]byte("j"), []byte("k")); info.Size != int64(len(b)) || info.Flags != dataplane.Persist {
		t.Fatalf("Stat after overwrite: %+v", info)
	}
	big := tier.JobUsage([]byte("j"))
	mustPut(t, tier, "j", "k", c, 0)
	mustGet(t, tier, "j", "k", c)
	if u := tier.Usage(); u.Values != 1 {
		t.Fatalf("Usage.Values %d after overwrites, want 1", u.Values)
	}
	if small := tier.JobUsage([]byte("j")); small <= 0 || small >= big {
		t.Fatalf("JobUsage %d after shrinking overwrite, was %d", small, big)
	}
}

func testDelete(t *testing.T, newTier NewTier) {
	tier := open(t, newTier, bigCapacity)
	mustPut(t, tier, "j", "gone", pattern(5000, 1), 0)
	mustPut(t, tier, "j", "kept", pattern(5000, 2), 0)
	if _, err := tier.Delete([]byte("j"), []byte("gone")); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, err := tier.Open([]byte("j"), []byte("gone"))
	wantErr(t, "Open deleted", err, dataplane.ErrNotFound)
	_, err = tier.Stat([]byte("j"), []byte("gone"))
	wantErr(t, "Stat deleted", err, dataplane.ErrNotFound)
	wantErr(t, "second Delete", delErr(tier.Delete([]byte("j"), []byte("gone"))), dataplane.ErrNotFound)
	mustGet(t, tier, "j", "kept", pattern(5000, 2))
	mustPut(t, tier, "j", "gone", pattern(7, 3), 0)
	mustGet(t, tier, "j", "gone", pattern(7, 3))
}

func testNotFound(t *testing.T, newTier NewTier) {
	tier := open(t, newTier, bigCapacity)
	mustPut(t, tier, "j", "k", []byte("v"), 0)
	for _, jk := range [][2]string{{"j", "other"}, {"nojob", "k"}, {"j", "k2"}, {"j", "K"}} {
		_, err := tier.Open([]byte(jk[0]), []byte(jk[1]))
		wantErr(t, "Open "+jk[0]+"/"+jk[1], err, dataplane.ErrNotFound)
		_, err = tier.Stat([]byte(jk[0]), []byte(jk[1]))
		wantErr(t, "Stat "+jk[0]+"/"+jk[1], err, dataplane.ErrNotFound)
		wantErr(t, "Delete "+jk[0]+"/"+jk[1], delErr(tier.Delete([]byte(jk[0]), []byte(jk[1]))), dataplane.ErrNotFound)
	}
	if n := tier.DropJob([]byte("nojob"), false); n != (dataplane.Dropped{}) {
		t.Fatalf("DropJob of an unknown job freed %+v", n)
	}
	if n := tier.JobUsage([]byte("nojob")); n != 0 {
		t.Fatalf("JobUsage of an unknown job: %d", n)
	}
}

// delErr keeps a Delete's error, for checks of the error alone.
func delErr(_ dataplane.Info, err error) error { return err }
