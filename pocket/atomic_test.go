package pocket

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/wire"
)

// The object contract (pocket/doc.go, "Object layout"): a get returns one
// whole acknowledged version or an error, never a mix; a failed or refused
// operation changes nothing and leaks nothing. Each test here failed on the
// layout before versioned chunks (chunks named key\x00i, overwritten in
// place, manifest last, no leases).

// usedBytes is what the job's values occupy on every node, in bytes.
func usedBytes(nodes []*dataplane.Node, job string) int64 {
	var u int64
	for _, n := range nodes {
		for _, t := range n.Tiers() {
			u += t.JobUsage([]byte(job))
		}
	}
	return u
}

// uniform reports whether b is n copies of c.
func uniform(b []byte, c byte, n int) bool {
	return len(b) == n && bytes.Count(b, []byte{c}) == n
}

// checkWhole fails unless got is one of the versions in vals (letter ->
// length), whole.
func checkWhole(t *testing.T, got []byte, vals map[byte]int) {
	t.Helper()
	if len(got) == 0 {
		t.Fatalf("empty value")
	}
	n, ok := vals[got[0]]
	if !ok || !uniform(got, got[0], n) {
		t.Fatalf("torn read: %d bytes starting %q, %d of them %q (versions %v)", len(got), got[0], bytes.Count(got, got[:1]), got[0], vals)
	}
}

func TestTornReadsNever(t *testing.T) {
	addrs, _ := cluster(t, 3, 64<<20)
	j := staticJob(t, Config{ChunkSize: 64 << 10}, addrs)
	ctx := context.Background()
	// Three versions of different lengths: a torn read shows as mixed
	// letters or as a length that is not its letter's.
	vals := map[byte]int{'A': 1 << 20, 'B': 1<<20 - 100<<10, 'C': 40 << 10}
	order := []byte{'A', 'B', 'C'}
	if err := j.Put(ctx, "k", bytes.Repeat([]byte{'A'}, vals['A'])); err != nil {
		t.Fatal(err)
	}
	stop := time.Now().Add(1500 * time.Millisecond)
	var wg sync.WaitGroup
	var reads atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; time.Now().Before(stop); i++ {
			c := order[i%3]
			if err := j.Put(ctx, "k", bytes.Repeat([]byte{c}, vals[c])); err != nil {
				t.Errorf("put: %v", err)
				return
			}
		}
	}()
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				got, err := j.Get(ctx, "k")
				if err != nil {
					t.Errorf("get: %v", err)
					return
				}
				checkWhole(t, got, vals)
				reads.Add(1)
			}
		}()
	}
	wg.Wait()
	if reads.Load() < 10 {
		t.Fatalf("only %d reads", reads.Load())
	}
}

func TestConcurrentWritersLeaveOneWholeValue(t *testing.T) {
	addrs, nodes := cluster(t, 3, 64<<20)
	j := staticJob(t, Config{ChunkSize: 64 << 10}, addrs)
	ctx := context.Background()
	vals := map[byte]int{'A': 2 << 20, 'B': 2<<20 - 1}
	for round := 0; round < 5; round++ {
		var wg sync.WaitGroup
		for c, n := range vals {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := j.Put(ctx, "k", bytes.Repeat([]byte{c}, n)); err != nil {
					t.Errorf("put %c: %v", c, err)
				}
			}()
		}
		wg.Wait()
		got, err := j.Get(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		checkWhole(t, got, vals)
	}
	if err := j.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if u := usedBytes(nodes, "job-1"); u != 0 {
		t.Fatalf("%d bytes left after deleting the only key", u)
	}
}

// TestRefusedPutChangesNothing: a put refused for space leaves the old
// value, the used bytes and the free space as they were. The nodes are
// large enough that the last put fits however its chunks fall (chunk
// placement follows each put's random version: with 8 MiB nodes a node
// sometimes drew more of the 8 MiB put's chunks than it had room for).
func TestRefusedPutChangesNothing(t *testing.T) {
	addrs, nodes := cluster(t, 3, 16<<20)
	j := staticJob(t, Config{ChunkSize: 256 << 10}, addrs)
	ctx := context.Background()
	old := bytes.Repeat([]byte{'A'}, 4<<20)
	if err := j.Put(ctx, "k", old); err != nil {
		t.Fatal(err)
	}
	before := usedBytes(nodes, "job-1")
	// Overwriting k with more than the cluster holds is refused, and so
	// is a new key that big.
	for _, key := range []string{"k", "other"} {
		err := j.Put(ctx, key, bytes.Repeat([]byte{'B'}, 64<<20))
		if !errors.Is(err, ErrNoSpace) {
			t.Fatalf("put of 64 MiB into 48 MiB: %v, want no space", err)
		}
		if u := usedBytes(nodes, "job-1"); u != before {
			t.Fatalf("refused put of %q left %d bytes, had %d", key, u, before)
		}
		got, err := j.Get(ctx, "k")
		if err != nil || !bytes.Equal(got, old) {
			t.Fatalf("k after a refused put: %d bytes, err %v", len(got), err)
		}
	}
	if _, err := j.Get(ctx, "other"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused new key reads back: %v", err)
	}
	// What the refused puts did not leak is free for the next one.
	if err := j.Put(ctx, "fits", bytes.Repeat([]byte{'C'}, 8<<20)); err != nil {
		t.Fatalf("a put that fits after refused ones: %v", err)
	}
}

func TestOverwriteAndDeleteFreeEveryChunk(t *testing.T) {
	addrs, nodes := cluster(t, 2, 40<<20)
	j := staticJob(t, Config{ChunkSize: 1 << 20}, addrs)
	ctx := context.Background()
	for i := 0; i < 4; i++ {
		key := fmt.Sprintf("k%d", i)
		if err := j.Put(ctx, key, bytes.Repeat([]byte{'A'}, 24<<20)); err != nil {
			t.Fatalf("put %d of 24 MiB into 2 x 40 MiB: %v", i, err)
		}
		if err := j.Put(ctx, key, []byte("sixteen bytes!!!")); err != nil {
			t.Fatal(err)
		}
	}
	if u := usedBytes(nodes, "job-1"); u > 64<<10 {
		t.Fatalf("4 values of 16 bytes occupy %d bytes", u)
	}
	// A chunked object replaced by a chunked one, then deleted.
	for _, n := range []int{8 << 20, 5 << 20} {
		if err := j.Put(ctx, "big", bytes.Repeat([]byte{'B'}, n)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := j.DeleteAll(ctx); err != nil {
		t.Fatal(err)
	}
	if u := usedBytes(nodes, "job-1"); u != 0 {
		t.Fatalf("%d bytes left after removing every key", u)
	}
}

func TestAbandonedChunksReclaimedByLease(t *testing.T) {
	addrs, nodes := cluster(t, 3, 64<<20)
	for _, n := range nodes {
		n.SetChunkLease(200 * time.Millisecond)
	}
	j := staticJob(t, Config{ChunkSize: 64 << 10}, addrs)
	ctx := context.Background()
	old := bytes.Repeat([]byte{'A'}, 1<<20)
	if err := j.Put(ctx, "k", old); err != nil {
		t.Fatal(err)
	}
	base := usedBytes(nodes, "job-1")
	// A writer that dies after some chunks of an overwrite: its chunks
	// are leased, nothing points at them, and the old value stays whole.
	w := j.newObject("k", 0)
	for i := 1; i <= 8; i++ {
		if err := w.putChunk(ctx, i, bytes.Repeat([]byte{'B'}, 64<<10)); err != nil {
			t.Fatal(err)
		}
	}
	if u := usedBytes(nodes, "job-1"); u <= base {
		t.Fatalf("chunks not stored: %d bytes, %d before", u, base)
	}
	got, err := j.Get(ctx, "k")
	if err != nil || !bytes.Equal(got, old) {
		t.Fatalf("k while a writer is dead mid-put: %d bytes, %v", len(got), err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for usedBytes(nodes, "job-1") != base {
		if time.Now().After(deadline) {
			t.Fatalf("dead writer's chunks not reclaimed: %d bytes, want %d", usedBytes(nodes, "job-1"), base)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A writer that confirms too late finds its lease gone and fails.
	if err := w.commit(ctx, wire.Manifest{Version: w.ver, Size: 8 * 64 << 10, Chunk: 64 << 10, Count: 8}); err == nil {
		t.Fatal("a commit after the lease expired succeeded")
	}
	got, err = j.Get(ctx, "k")
	if err != nil || !bytes.Equal(got, old) {
		t.Fatalf("k after a late commit: %d bytes, %v", len(got), err)
	}
}

func TestCancelledPutsLeaveNothing(t *testing.T) {
	addrs, nodes := cluster(t, 3, 64<<20)
	j := staticJob(t, Config{ChunkSize: 64 << 10, Parallel: 2}, addrs)
	old := bytes.Repeat([]byte{'A'}, 1<<20)
	if err := j.Put(context.Background(), "k", old); err != nil {
		t.Fatal(err)
	}
	base := usedBytes(nodes, "job-1")
	failed := 0
	for i := 0; i < 40; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%8)*100*time.Microsecond)
		err := j.Put(ctx, "k", bytes.Repeat([]byte{'B'}, 2<<20))
		cancel()
		if err != nil {
			failed++
		}
		got, gerr := j.Get(context.Background(), "k")
		if gerr != nil {
			t.Fatal(gerr)
		}
		checkWhole(t, got, map[byte]int{'A': 1 << 20, 'B': 2 << 20})
		if err == nil {
			if err := j.Put(context.Background(), "k", old); err != nil {
				t.Fatal(err)
			}
		}
	}
	if failed == 0 {
		t.Skip("no put was cancelled: the machine was too fast for the deadlines")
	}
	if u := usedBytes(nodes, "job-1"); u != base {
		t.Fatalf("%d cancelled puts left %d bytes, want %d", failed, u, base)
	}
}

func TestNodeLostMidPutNeverMixes(t *testing.T) {
	addrs, nodes := cluster(t, 3, 64<<20)
	j := staticJob(t, Config{ChunkSize: 64 << 10}, addrs)
	ctx := context.Background()
	if err := j.Put(ctx, "k", bytes.Repeat([]byte{'A'}, 4<<20)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- j.Put(ctx, "k", bytes.Repeat([]byte{'B'}, 8<<20)) }()
	time.Sleep(2 * time.Millisecond)
	nodes[2].Close()
	<-done
	for i := 0; i < 20; i++ {
		got, err := j.Get(ctx, "k")
		if err == nil {
			checkWhole(t, got, map[byte]int{'A': 4 << 20, 'B': 8 << 20})
		}
	}
}

func TestDeleteAfterReadOnlyAfterAWholeRead(t *testing.T) {
	addrs, _ := cluster(t, 2, 64<<20)
	s := NewStore(nil, Config{ChunkSize: 64 << 10})
	t.Cleanup(func() { s.Close() })
	j, err := s.OpenStatic("job-1", addrs...)
	if err != nil {
		t.Fatal(err)
	}
	h := &Handle{s: s, jobs: map[string]*Job{"job-1": j}}
	ctx := context.Background()
	for _, n := range []int{100, 300 << 10} {
		val := bytes.Repeat([]byte{'A'}, n)
		if err := j.Put(ctx, "k", val); err != nil {
			t.Fatal(err)
		}
		// get_buffer with the wrong length fails and deletes nothing.
		buf := make([]byte, n+1)
		if h.GetBuffer("k", buf, n+1, "job-1", true) != -1 {
			t.Fatalf("%d-byte value read into %d bytes", n, n+1)
		}
		if ok, _ := j.Exists(ctx, "k"); !ok {
			t.Fatalf("%d-byte value deleted by a failed get_buffer", n)
		}
		// A failed download deletes nothing either.
		if err := j.GetFile(ctx, "k", filepath.Join(t.TempDir(), "no-such-dir", "f"), DeleteAfterRead()); err == nil {
			t.Fatal("download into a missing directory succeeded")
		}
		if ok, _ := j.Exists(ctx, "k"); !ok {
			t.Fatalf("%d-byte value deleted by a failed download", n)
		}
		dst := filepath.Join(t.TempDir(), "f")
		if err := j.GetFile(ctx, "k", dst, DeleteAfterRead()); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(dst); !bytes.Equal(b, val) {
			t.Fatalf("downloaded %d bytes, want %d", len(b), n)
		}
		if ok, _ := j.Exists(ctx, "k"); ok {
			t.Fatalf("%d-byte value left after delete-after-read", n)
		}
	}
}

func TestRemoveAllAndListSizes(t *testing.T) {
	addrs, nodes := cluster(t, 3, 64<<20)
	j := staticJob(t, Config{ChunkSize: 64 << 10}, addrs)
	ctx := context.Background()
	for key, n := range map[string]int{"a": 10, "a/b": 200 << 10, "a/c": 5, "d/x": 1 << 20, "keep": 3, "/a": 4, "/a/b": 6} {
		if err := j.Put(ctx, key, bytes.Repeat([]byte{'v'}, n)); err != nil {
			t.Fatal(err)
		}
	}
	ents, err := j.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[string]int64{}
	for _, e := range ents {
		sizes[e.Name] = e.Size
	}
	if sizes["a/b"] != 200<<10 || sizes["d/x"] != 1<<20 || len(ents) != 7 {
		t.Fatalf("listing %v", sizes)
	}
	// a is a value and a directory: both go. d/ with its slash: its keys
	// go. /a is another name than a: it goes with rm /a, not before.
	for _, name := range []string{"a", "d/", "/a"} {
		if err := j.RemoveAll(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	ents, err = j.List(ctx, "")
	if err != nil || len(ents) != 1 || ents[0].Name != "keep" {
		t.Fatalf("left after rm a and rm d/: %v, %v", ents, err)
	}
	if err := j.Delete(ctx, "keep"); err != nil {
		t.Fatal(err)
	}
	if u := usedBytes(nodes, "job-1"); u != 0 {
		t.Fatalf("%d bytes left", u)
	}
}

// TestForgedManifestCannotExhaustMemory: a manifest a hostile client of the
// job wrote by hand, claiming a 40 GiB object, makes a get fail, not
// allocate 40 GiB. Before, the reader's process died (makeslice / out of
// memory).
func TestForgedManifestCannotExhaustMemory(t *testing.T) {
	addrs, _ := cluster(t, 2, 64<<20)
	j := staticJob(t, Config{ChunkSize: 64 << 10}, addrs)
	ctx := context.Background()
	m := wire.Manifest{Version: 0x1234, Size: 40 << 30, Chunk: 64 << 20, Count: 640}
	_, _, err := j.doReq(ctx, wire.OpPut, wire.FlagManifest, []byte("k"), 0, reqExtra{version: m.Version, objectSize: m.Size}, wire.AppendManifest(nil, m), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Get(ctx, "k"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("get of a forged 40 GiB manifest: %v", err)
	}
}

// TestGetFileDeleteAfterReadIntoADirectoryKeepsTheValue: a download with
// DeleteAfterRead whose dst cannot be replaced (it names a directory)
// fails, and the value must stay somewhere: in the store, or on disk.
// GetFile deleted the version read (the commit) before the rename, then
// the rename failed and the temporary file, the only copy, was removed:
// the value was in neither (its doc says the value is deleted only after
// dst is in place).
func TestGetFileDeleteAfterReadIntoADirectoryKeepsTheValue(t *testing.T) {
	addrs, _ := cluster(t, 2, 64<<20)
	j := staticJob(t, Config{ChunkSize: 64 << 10}, addrs)
	ctx := context.Background()
	val := bytes.Repeat([]byte{'B'}, 300<<10)
	if err := j.Put(ctx, "k", val); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	dst := filepath.Join(dir, "out")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := j.GetFile(ctx, "k", dst, DeleteAfterRead()); err == nil {
		t.Fatal("download over a directory succeeded")
	}
	if ok, _ := j.Exists(ctx, "k"); ok {
		return
	}
	var onDisk []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(p); bytes.Equal(b, val) {
				onDisk = append(onDisk, p)
			}
		}
		return nil
	})
	if len(onDisk) == 0 {
		t.Fatal("the value is gone from the store, and no file holds it")
	}
}
