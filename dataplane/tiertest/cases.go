package tiertest

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/wire"
)

func testBadKeys(t *testing.T, newTier NewTier) {
	tier := open(t, newTier, bigCapacity)
	longKey := strings.Repeat("k", wire.DefaultMaxKeyLen+1)
	longJob := strings.Repeat("j", wire.DefaultMaxJobLen+1)
	for _, jk := range [][2]string{{"", "k"}, {"j", ""}, {"", ""}, {"j", longKey}, {longJob, "k"}} {
		job, key := []byte(jk[0]), []byte(jk[1])
		name := fmt.Sprintf("job %d bytes, key %d bytes", len(job), len(key))
		_, err := tier.Create(job, key, 1, dataplane.Meta{})
		wantErr(t, "Create "+name, err, dataplane.ErrBadKey)
		_, err = tier.Open(job, key)
		wantErr(t, "Open "+name, err, dataplane.ErrBadKey)
		_, err = tier.Stat(job, key)
		wantErr(t, "Stat "+name, err, dataplane.ErrBadKey)
		wantErr(t, "Delete "+name, delErr(tier.Delete(job, key)), dataplane.ErrBadKey)
	}
	noop := func([]byte, dataplane.Info) bool { return true }
	wantErr(t, "List with empty job", tier.List(nil, nil, nil, noop), dataplane.ErrBadKey)
	// The longest allowed key and job work.
	maxKey := strings.Repeat("k", wire.DefaultMaxKeyLen)
	maxJob := strings.Repeat("j", wire.DefaultMaxJobLen)
	mustPut(t, tier, maxJob, maxKey, []byte("v"), 0)
	mustGet(t, tier, maxJob, maxKey, []byte("v"))
	if u := tier.Usage(); u.Values != 1 {
		t.Fatalf("refused creates stored something: %d values", u.Values)
	}
}

func testJobsAreSeparate(t *testing.T, newTier NewTier) {
	tier := open(t, newTier, bigCapacity)
	mustPut(t, tier, "a", "k", pattern(100, 1), 0)
	mustPut(t, tier, "b", "k", pattern(200, 2), 0)
	mustGet(t, tier, "a", "k", pattern(100, 1))
	mustGet(t, tier, "b", "k", pattern(200, 2))
	if _, err := tier.Delete([]byte("a"), []byte("k")); err != nil {
		t.Fatal(err)
	}
	mustGet(t, tier, "b", "k", pattern(200, 2))
	if tier.JobUsage([]byte("a")) != 0 || tier.JobUsage([]byte("b")) < 200 {
		t.Fatalf("job usage a=%d b=%d", tier.JobUsage([]byte("a")), tier.JobUsage([]byte("b")))
	}
}

func testCreateAbort(t *testing.T, newTier NewTier) {
	tier := open(t, newTier, bigCapacity)
	mustPut(t, tier, "j", "old", pattern(3000, 1), 0)
	before := tier.Usage()
	for _, n := range []int64{0, 1, 5000, 3 << 20} {
		for _, key := range []string{"new", "old"} {
			p, err := tier.Create([]byte("j"), []byte(key), n, dataplane.Meta{})
			if err != nil {
				t.Fatalf("Create %d: %v", n, err)
			}
			for _, b := range p.Buffers() {
				copy(b, pattern(len(b), 9))
			}
			p.Abort()
		}
	}
	_, err := tier.Open([]byte("j"), []byte("new"))
	wantErr(t, "Open after Abort", err, dataplane.ErrNotFound)
	mustGet(t, tier, "j", "old", pattern(3000, 1))
	if after := tier.Usage(); after != before {
		t.Fatalf("usage after aborts %+v, before %+v", after, before)
	}
}

func testTooLarge(t *testing.T, newTier NewTier) {
	tier := open(t, newTier, fullCapacity)
	c := tier.Usage().Capacity
	_, err := tier.Create([]byte("j"), []byte("k"), c+1, dataplane.Meta{})
	wantErr(t, "Create beyond capacity", err, dataplane.ErrTooLarge)
	_, err = tier.Create([]byte("j"), []byte("k"), -1, dataplane.Meta{})
	wantErr(t, "Create of a negative size", err, dataplane.ErrTooLarge)
}

func testFull(t *testing.T, newTier NewTier) {
	tier := open(t, newTier, fullCapacity)
	const size = 300 << 10
	capacity := tier.Usage().Capacity
	var stored []string
	var err error
	for i := 0; i < int(capacity/size)+8; i++ {
		key := fmt.Sprintf("v%03d", i)
		if err = put(tier, "j", key, pattern(size, uint64(i)), 0); err != nil {
			break
		}
		stored = append(stored, key)
	}
	wantErr(t, "put into a full tier", err, dataplane.ErrNoSpace)
	if len(stored) == 0 {
		t.Fatal("nothing fit into an empty tier")
	}
	u := tier.Usage()
	if u.Used > u.Capacity || u.Values != int64(len(stored)) {
		t.Fatalf("full tier usage %+v with %d values stored", u, len(stored))
	}
	// Refused puts of every kind change nothing.
	_, err = tier.Create([]byte("j"), []byte("big"), capacity/2, dataplane.Meta{})
	wantErr(t, "big Create in a full tier", err, dataplane.ErrNoSpace)
	err = put(tier, "j", stored[0], pattern(size, 999), 0)
	wantErr(t, "overwrite in a full tier", err, dataplane.ErrNoSpace)
	if after := tier.Usage(); after != u {
		t.Fatalf("refused puts changed usage: %+v, was %+v", after, u)
	}
	for i, key := range stored {
		mustGet(t, tier, "j", key, pattern(size, uint64(i)))
	}
	// Room freed by a delete is usable again.
	if _, err := tier.Delete([]byte("j"), []byte(stored[1])); err != nil {
		t.Fatal(err)
	}
	mustPut(t, tier, "j", "again", pattern(size, 77), 0)
	mustGet(t, tier, "j", "again", pattern(size, 77))
	mustGet(t, tier, "j", stored[0], pattern(size, 0))
}

func testOpenOutlivesDelete(t *testing.T, newTier NewTier) {
	tier := open(t, newTier, bigCapacity)
	for _, n := range []int{10, 5000, 3 << 20} {
		first, second := pattern(n, 1), pattern(n, 2)
		mustPut(t, tier, "j", "del", first, 0)
		mustPut(t, tier, "j", "over", first, 0)
		vDel, err := tier.Open([]byte("j"), []byte("del"))
		if err != nil {
			t.Fatal(err)
		}
		vOver, err := tier.Open([]byte("j"), []byte("over"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tier.Delete([]byte("j"), []byte("del")); err != nil {
			t.Fatal(err)
		}
		mustPut(t, tier, "j", "over", second, 0)
		mustPut(t, tier, "j", "del", second, 0) // may reuse nothing of vDel
		mustGet(t, tier, "j", "over", second)
		held := tier.Usage().Used
		for name, v := range map[string]dataplane.Value{"deleted": vDel, "overwritten": vOver} {
			if got := bytes.Join(v.Segments(), nil); !bytes.Equal(got, first) || v.Size() != int64(n) {
				t.Fatalf("%d-byte %s value changed before Release", n, name)
			}
		}
		vDel.Release()
		vOver.Release()
		if after := tier.Usage().Used; after >= held {
			t.Fatalf("releasing the last references freed nothing: used %d, was %d", after, held)
		}
		if _, err := tier.Delete([]byte("j"), []byte("del")); err != nil {
			t.Fatal(err)
		}
		if _, err := tier.Delete([]byte("j"), []byte("over")); err != nil {
			t.Fatal(err)
		}
	}
}

type listed struct {
	key  string
	size int64
}

func collect(t *testing.T, tier dataplane.Tier, job, prefix, after string, limit int) []listed {
	t.Helper()
	var out []listed
	err := tier.List([]byte(job), []byte(prefix), []byte(after), func(key []byte, info dataplane.Info) bool {
		out = append(out, listed{string(key), info.Size})
		return len(out) < limit
	})
	if err != nil {
		t.Fatalf("List(%q, %q, %q): %v", job, prefix, after, err)
	}
	return out
}

func keysOf(l []listed) string {
	var s []string
	for _, e := range l {
		s = append(s, e.key)
	}
	return strings.Join(s, " ")
}

func testList(t *testing.T, newTier NewTier) {
	tier := open(t, newTier, bigCapacity)
	keys := []string{"a/2", "c", "a/10", "b/1", "a/1", "a", "a/\xff", "b/"}
	for i, k := range keys {
		mustPut(t, tier, "j", k, pattern(i+1, 0), 0)
	}
	mustPut(t, tier, "other", "a/3", []byte("x"), 0)
	cases := []struct {
		prefix, after string
		limit         int
		want          string
	}{
		{"", "", 100, "a a/1 a/10 a/2 a/\xff b/ b/1 c"},
		{"a/", "", 100, "a/1 a/10 a/2 a/\xff"},
		{"a/", "a/10", 100, "a/2 a/\xff"},
		{"a/", "a/100", 100, "a/2 a/\xff"},
		{"", "b/", 100, "b/1 c"},
		{"", "", 3, "a a/1 a/10"},
		{"zz", "", 100, ""},
		{"", "c", 100, ""},
	}
	for _, c := range cases {
		if got := keysOf(collect(t, tier, "j", c.prefix, c.after, c.limit)); got != c.want {
			t.Errorf("List(prefix %q, after %q, limit %d) = %q, want %q", c.prefix, c.after, c.limit, got, c.want)
		}
	}
	for _, e := range collect(t, tier, "j", "", "", 100) {
		for i, k := range keys {
			if k == e.key && e.size != int64(i+1) {
				t.Errorf("List size of %q = %d, want %d", k, e.size, i+1)
			}
		}
	}
	if got := collect(t, tier, "nojob", "", "", 100); len(got) != 0 {
		t.Errorf("List of an unknown job: %v", got)
	}
	// fn may call the tier.
	err := tier.List([]byte("j"), []byte("a/"), nil, func(key []byte, _ dataplane.Info) bool {
		return delErr(tier.Delete([]byte("j"), key)) == nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := keysOf(collect(t, tier, "j", "", "", 100)); got != "a b/ b/1 c" {
		t.Errorf("after deleting a/ from inside List: %q", got)
	}
}

func testDropJob(t *testing.T, newTier NewTier) {
	tier := open(t, newTier, bigCapacity)
	mustPut(t, tier, "j", "tmp1", pattern(1000, 1), 0)
	mustPut(t, tier, "j", "tmp2", pattern(3<<20, 2), 0)
	mustPut(t, tier, "j", "keep", pattern(5000, 3), dataplane.Persist)
	mustPut(t, tier, "other", "tmp1", pattern(100, 4), 0)
	before := tier.JobUsage([]byte("j"))
	freed := tier.DropJob([]byte("j"), true)
	if freed.Bytes <= 0 || freed.Values != 2 || tier.JobUsage([]byte("j")) != before-freed.Bytes {
		t.Fatalf("DropJob(keep) freed %+v (want 2 values); job usage %d, was %d", freed, tier.JobUsage([]byte("j")), before)
	}
	mustGet(t, tier, "j", "keep", pattern(5000, 3))
	for _, k := range []string{"tmp1", "tmp2"} {
		_, err := tier.Open([]byte("j"), []byte(k))
		wantErr(t, "Open dropped "+k, err, dataplane.ErrNotFound)
	}
	rest := tier.JobUsage([]byte("j"))
	if got := tier.DropJob([]byte("j"), false); got.Bytes != rest || got.Values != 1 {
		t.Fatalf("DropJob(all) freed %+v, job held %d bytes in 1 value", got, rest)
	}
	_, err := tier.Open([]byte("j"), []byte("keep"))
	wantErr(t, "Open after DropJob", err, dataplane.ErrNotFound)
	if tier.JobUsage([]byte("j")) != 0 || tier.Usage().Values != 1 {
		t.Fatalf("after DropJob: job usage %d, values %d", tier.JobUsage([]byte("j")), tier.Usage().Values)
	}
	mustGet(t, tier, "other", "tmp1", pattern(100, 4))
	// The job can be used again.
	mustPut(t, tier, "j", "new", []byte("v"), 0)
	mustGet(t, tier, "j", "new", []byte("v"))
}

func testUsageReturnsToZero(t *testing.T, newTier NewTier) {
	tier := open(t, newTier, bigCapacity)
	empty := tier.Usage()
	if empty.Used != 0 || empty.Values != 0 || empty.Capacity < bigCapacity {
		t.Fatalf("new tier usage %+v", empty)
	}
	var total int
	for i, n := range sizes {
		for _, job := range []string{"a", "b"} {
			mustPut(t, tier, job, fmt.Sprint(i), pattern(n, uint64(i)), 0)
			total += n
		}
	}
	u := tier.Usage()
	if u.Used < int64(total) || u.Values != int64(2*len(sizes)) {
		t.Fatalf("usage %+v after storing %d bytes in %d values", u, total, 2*len(sizes))
	}
	if tier.JobUsage([]byte("a"))+tier.JobUsage([]byte("b")) != u.Used {
		t.Fatalf("job usage %d+%d != tier used %d", tier.JobUsage([]byte("a")), tier.JobUsage([]byte("b")), u.Used)
	}
	for i := range sizes {
		for _, job := range []string{"a", "b"} {
			if _, err := tier.Delete([]byte(job), []byte(fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	if u := tier.Usage(); u.Used != 0 || u.Values != 0 || u.Capacity != empty.Capacity {
		t.Fatalf("usage after deleting everything: %+v", u)
	}
	if a, b := tier.JobUsage([]byte("a")), tier.JobUsage([]byte("b")); a != 0 || b != 0 {
		t.Fatalf("job usage after deleting everything: %d, %d", a, b)
	}
}

func testClose(t *testing.T, newTier NewTier) {
	tier := newTier(t, bigCapacity)
	data := pattern(3<<20, 5)
	mustPut(t, tier, "j", "k", data, 0)
	v, err := tier.Open([]byte("j"), []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := tier.Create([]byte("j"), []byte("p"), 10, dataplane.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if err := tier.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := bytes.Join(v.Segments(), nil); !bytes.Equal(got, data) {
		t.Fatal("a value open across Close changed")
	}
	v.Release()
	if _, err := p.Commit(); !errors.Is(err, dataplane.ErrClosed) {
		t.Fatalf("Commit after Close: %v, want ErrClosed", err)
	}
	_, err = tier.Create([]byte("j"), []byte("k"), 1, dataplane.Meta{})
	wantErr(t, "Create after Close", err, dataplane.ErrClosed)
	_, err = tier.Open([]byte("j"), []byte("k"))
	wantErr(t, "Open after Close", err, dataplane.ErrClosed)
	_, err = tier.Stat([]byte("j"), []byte("k"))
	wantErr(t, "Stat after Close", err, dataplane.ErrClosed)
	wantErr(t, "Delete after Close", delErr(tier.Delete([]byte("j"), []byte("k"))), dataplane.ErrClosed)
	noop := func([]byte, dataplane.Info) bool { return true }
	wantErr(t, "List after Close", tier.List([]byte("j"), nil, nil, noop), dataplane.ErrClosed)
}
