package pocket

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/netio"
)

// cluster starts n DRAM nodes on loopback and returns their addresses.
func cluster(t testing.TB, n int, capacity int64) ([]string, []*dataplane.Node) {
	t.Helper()
	var addrs []string
	var nodes []*dataplane.Node
	for i := 0; i < n; i++ {
		d, err := dataplane.NewDRAM(capacity, dataplane.DRAMOptions{})
		if err != nil {
			t.Fatal(err)
		}
		nd, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", DRAM: d, Net: netio.Config{Loops: 1}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			nd.Close()
			d.Close()
		})
		addrs = append(addrs, nd.Addr().String())
		nodes = append(nodes, nd)
	}
	return addrs, nodes
}

func staticJob(t testing.TB, cfg Config, addrs []string) *Job {
	t.Helper()
	s := NewStore(nil, cfg)
	t.Cleanup(func() { s.Close() })
	j, err := s.OpenStatic("job-1", addrs...)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestObjectsByteExact(t *testing.T) {
	addrs, nodes := cluster(t, 3, 512<<20)
	j := staticJob(t, Config{ChunkSize: 1 << 20}, addrs)
	ctx := context.Background()
	for i, size := range []int{0, 1, 1000, 1 << 20, 1<<20 + 1, 5<<20 + 3, 64 << 20} {
		key := fmt.Sprintf("obj/%d", size)
		val := randBytes(size, uint64(i+1))
		if err := j.Put(ctx, key, val); err != nil {
			t.Fatal(err)
		}
		got, err := j.Get(ctx, key)
		if err != nil || !bytes.Equal(got, val) {
			t.Fatalf("size %d: err %v, equal %v", size, err, bytes.Equal(got, val))
		}
		info, err := j.Stat(ctx, key)
		if err != nil || info.Size != int64(size) {
			t.Fatalf("stat %d: %+v %v", size, info, err)
		}
	}
	// Chunks of the 64 MiB object are spread over every node.
	for i, n := range nodes {
		if n.Tiers()[0].Usage().Used < 8<<20 {
			t.Errorf("node %d holds only %d bytes", i, n.Tiers()[0].Usage().Used)
		}
	}
	// Listing hides chunk keys.
	ents, err := j.List(ctx, "obj/")
	if err != nil || len(ents) != 7 {
		t.Fatalf("list: %d entries, %v", len(ents), err)
	}
	for _, e := range ents {
		if err := j.Delete(ctx, e.Name); err != nil {
			t.Fatal(err)
		}
	}
	for i, n := range nodes {
		if u := n.Tiers()[0].Usage(); u.Used != 0 || u.Values != 0 {
			t.Errorf("node %d after deleting all: %+v", i, u)
		}
	}
}

func TestDirectories(t *testing.T) {
	addrs, _ := cluster(t, 3, 64<<20)
	j := staticJob(t, Config{}, addrs)
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(j.CreateDir(ctx, "shuffle"))
	if n, err := j.CountFiles(ctx, "shuffle"); err != nil || n != 0 {
		t.Fatalf("empty dir: %d %v", n, err)
	}
	for i := 0; i < 20; i++ {
		must(j.Put(ctx, fmt.Sprintf("shuffle/part-%02d", i), []byte{byte(i)}))
	}
	must(j.CreateDir(ctx, "shuffle/sub"))
	must(j.Put(ctx, "shuffle/sub/x", []byte("x")))
	if n, err := j.CountFiles(ctx, "shuffle"); err != nil || n != 21 {
		t.Fatalf("count = %d, %v; want 21", n, err)
	}
	if _, err := j.CountFiles(ctx, "nothing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("count of a missing dir: %v", err)
	}
	must(j.RemoveAll(ctx, "shuffle"))
	if ents, err := j.List(ctx, ""); err != nil || len(ents) != 0 {
		t.Fatalf("after recursive delete: %v %v", ents, err)
	}
}

func TestDeleteAfterReadAndOverwrite(t *testing.T) {
	addrs, nodes := cluster(t, 2, 64<<20)
	j := staticJob(t, Config{ChunkSize: 64 << 10}, addrs)
	ctx := context.Background()
	big := randBytes(300<<10, 9)
	if err := j.Put(ctx, "k", big); err != nil {
		t.Fatal(err)
	}
	if err := j.Put(ctx, "k", big[:1000]); err != nil { // overwrite is allowed
		t.Fatal(err)
	}
	if got, err := j.Get(ctx, "k"); err != nil || !bytes.Equal(got, big[:1000]) {
		t.Fatalf("after overwrite: %v", err)
	}
	if err := j.Put(ctx, "once", big); err != nil {
		t.Fatal(err)
	}
	if got, err := j.Get(ctx, "once", DeleteAfterRead()); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("read once: %v", err)
	}
	if _, err := j.Get(ctx, "once"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second read: %v", err)
	}
	var values int64
	for _, n := range nodes {
		values += n.Tiers()[0].Usage().Values
	}
	// What is left: k, plus the orphaned chunks of k's first, chunked
	// version (freed when the job ends; documented).
	if values < 1 {
		t.Fatalf("values left: %d", values)
	}
}

func TestStreamsAndFiles(t *testing.T) {
	addrs, _ := cluster(t, 3, 128<<20)
	j := staticJob(t, Config{ChunkSize: 256 << 10}, addrs)
	ctx := context.Background()
	val := randBytes(3<<20+5, 4)
	w, err := j.NewWriter(ctx, "stream")
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(val); off += 100_000 {
		if _, err := w.Write(val[off:min(off+100_000, len(val))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := j.NewReader(ctx, "stream")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, val) || r.Size() != int64(len(val)) {
		t.Fatalf("stream: %v, %d bytes", err, len(got))
	}
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	if err := os.WriteFile(src, val[:12345], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := j.PutFile(ctx, src, "file"); err != nil {
		t.Fatal(err)
	}
	if err := j.GetFile(ctx, "file", dst); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(dst); !bytes.Equal(b, val[:12345]) {
		t.Fatal("file round trip differs")
	}
}

func TestDeadNode(t *testing.T) {
	addrs, nodes := cluster(t, 3, 64<<20)
	j := staticJob(t, Config{}, addrs)
	ctx := context.Background()
	for i := 0; i < 60; i++ {
		if err := j.Put(ctx, fmt.Sprint(i), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	nodes[1].Close()
	ok, lost := 0, 0
	for i := 0; i < 60; i++ {
		got, err := j.Get(ctx, fmt.Sprint(i))
		switch {
		case err == nil && len(got) == 1 && got[0] == byte(i):
			ok++
		case err != nil && errors.Is(err, ErrUnavailable):
			lost++
		default:
			t.Fatalf("key %d: %v", i, err)
		}
	}
	if ok == 0 || lost == 0 || ok+lost != 60 {
		t.Fatalf("ok %d, unavailable %d", ok, lost)
	}
}

func TestBadNames(t *testing.T) {
	j := staticJob(t, Config{}, []string{"127.0.0.1:1"})
	for _, k := range []string{"", "a\x00b"} {
		if err := j.Put(context.Background(), k, nil); !errors.Is(err, ErrBadName) {
			t.Errorf("put %q: %v", k, err)
		}
	}
	// A long key is named cut short, with its length (before: the whole
	// 64 KiB key in the message).
	long := strings.Repeat("k", 64<<10)
	if err := j.Put(context.Background(), long, nil); !errors.Is(err, ErrBadName) || len(err.Error()) > 300 ||
		!strings.Contains(err.Error(), "(65536 bytes)") {
		t.Errorf("put of a 64 KiB key: %d-byte error %.200q; want ErrBadName naming its length, cut short", len(err.Error()), err)
	}
}
