package dataplane_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/pocket"
	"github.com/pocketstore/pocket/wire"
)

// listTestNode starts a node on a DRAM tier and returns both.
func listTestNode(t *testing.T) (*dataplane.Node, *dataplane.DRAM) {
	t.Helper()
	d, err := dataplane.NewDRAM(64<<20, dataplane.DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", DRAM: d, Net: netio.Config{Loops: 2}})
	if err != nil {
		d.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.Close()
		d.Close()
	})
	return n, d
}

// A listing over the wire, paged as the SDK pages, with deletions and
// creations between pages: ascending, no key twice, none deleted before
// its page, every key never deleted listed.
func TestListOverTheWire(t *testing.T) {
	n, d := listTestNode(t)
	ctx := context.Background()
	c, err := client.DialConn(ctx, n.Addr().String(), client.ConnOptions{Job: []byte("job-1")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	present := map[string]bool{}
	for i := 0; i < 5000; i++ {
		k := fmt.Sprintf("f/%06d", 2*i)
		put(t, d, "job-1", k, []byte("v"))
		present[k] = true
	}
	deleted := map[string]bool{}
	var after, prev []byte
	listed, pages := 0, 0
	for {
		resp := listRaw(t, c, wire.Request{Job: []byte("job-1"), After: after, Limit: 128})
		pages++
		for _, e := range resp.Entries {
			k := string(e.Key)
			if prev != nil && k <= string(prev) {
				t.Fatalf("%q listed after %q", k, prev)
			}
			prev = e.Key
			if deleted[k] {
				t.Fatalf("%q listed after its deletion", k)
			}
			listed++
		}
		if !resp.More {
			break
		}
		after = resp.Entries[len(resp.Entries)-1].Key
		// Delete the next 5 keys after the cursor and 5 far ahead;
		// create keys around the cursor.
		for _, i := range []int{1, 2, 3, 4, 5, 500, 501, 502, 503, 504} {
			var j int
			fmt.Sscanf(string(after), "f/%06d", &j)
			k := fmt.Sprintf("f/%06d", j+2*i)
			if present[k] && !deleted[k] {
				if _, err := d.Delete([]byte("job-1"), []byte(k)); err != nil {
					t.Fatal(err)
				}
				deleted[k] = true
			}
			put(t, d, "job-1", fmt.Sprintf("f/%06d", j+2*i-1), []byte("new"))
		}
	}
	if want := len(present) - len(deleted); listed < want {
		t.Fatalf("listed %d keys over %d pages; %d were never deleted", listed, pages, want)
	}
	if pages < 30 || len(deleted) < 200 {
		t.Fatalf("%d pages, %d deletions: paging not exercised", pages, len(deleted))
	}
}

func listRaw(t *testing.T, c *client.Conn, req wire.Request) wire.Response {
	t.Helper()
	if _, err := c.Send(wire.OpList, 0, &req, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	r, err := c.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if r.Code != wire.CodeOK {
		t.Fatal(r.Err())
	}
	var resp wire.Response
	if err := wire.DecodeResponse(r.Meta, &resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

// The SDK merges the nodes' sorted listings: every name once, in order,
// a name on several nodes once with the last node's size, and directories
// (a delimiter) once however many nodes have keys under them; several
// pages a node.
func TestListSDKMerge(t *testing.T) {
	var addrs []string
	var tiers []*dataplane.DRAM
	for i := 0; i < 3; i++ {
		n, d := listTestNode(t)
		addrs = append(addrs, n.Addr().String())
		tiers = append(tiers, d)
	}
	want := map[string]int64{}
	for i := 0; i < 6000; i++ {
		k := fmt.Sprintf("a/%02d/%05d", i%40, i)
		node := i % 3
		put(t, tiers[node], "job-1", k, make([]byte, 1+i%7))
		want[k] = int64(1 + i%7)
		if i%10 == 0 { // also on the last node, with another size
			put(t, tiers[2], "job-1", k, make([]byte, 9))
			want[k] = 9
		}
	}
	put(t, tiers[1], "job-1", string(wire.AppendChunkKey(nil, []byte("a/00/00000"), 5, 1)), []byte("c"))
	s := pocket.NewStore(nil, pocket.Config{})
	defer s.Close()
	j, err := s.OpenStatic("job-1", addrs...)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ents, err := j.List(ctx, "a/")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for k := range want {
		names = append(names, k)
	}
	sort.Strings(names)
	if len(ents) != len(names) {
		t.Fatalf("listed %d names, want %d", len(ents), len(names))
	}
	for i, e := range ents {
		if e.Name != names[i] || e.Size != want[e.Name] || e.Dir {
			t.Fatalf("entry %d: %+v, want %q size %d", i, e, names[i], want[names[i]])
		}
	}
	n, err := j.CountFiles(ctx, "a")
	if err != nil || n != 40 {
		t.Fatalf("CountFiles(a) = %d, %v; want 40", n, err)
	}
	ents, err = j.List(ctx, "a/07/")
	if err != nil || len(ents) != 150 || !slices.IsSortedFunc(ents, func(a, b pocket.Entry) int {
		return strings.Compare(a.Name, b.Name)
	}) {
		t.Fatalf("List(a/07/): %d entries, %v", len(ents), err)
	}
}
