package pocket

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestListReportSaysWhatItMissed: a listing of a job whose map marks a
// node dead, or lists a node that left it dead (Map.Lost), lists the other
// nodes' names and says which nodes it could not cover (Partial), so a
// caller can tell a partial listing from a complete one. On the old code
// List returned the surviving names with no error and nothing said some
// were missing (a new user's pocket ls looked like success after a node
// was lost).
func TestListReportSaysWhatItMissed(t *testing.T) {
	addrs, _ := cluster(t, 3, 64<<20)
	j := staticJob(t, Config{}, addrs)
	ctx := context.Background()
	for i := 0; i < 60; i++ {
		if err := j.Put(ctx, fmt.Sprintf("k%02d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	l, err := j.ListReport(ctx, "")
	if err != nil || len(l.Entries) != 60 || l.Partial() {
		t.Fatalf("ListReport of the whole map: %d names, %+v, %v; want 60, not partial", len(l.Entries), l, err)
	}

	m := j.Map()
	m.Dead = map[string]bool{addrs[0]: true}
	j.setMap(m)
	l, err = j.ListReport(ctx, "")
	if err != nil || !l.Partial() || !slices.Equal(l.Dead, addrs[:1]) || len(l.Lost) != 0 {
		t.Fatalf("ListReport with node %s dead: %+v, %v; want it named dead, partial", addrs[0], l, err)
	}
	if len(l.Entries) == 60 || len(l.Entries) == 0 {
		t.Errorf("ListReport with a dead node listed %d names; want the other nodes' only", len(l.Entries))
	}

	m = j.Map()
	m.Dead = nil
	m.Nodes = m.Nodes[1:]
	m.Lost = []LostNode{{Addr: addrs[0], Weight: 1, Epoch: 2}}
	j.setMap(m)
	l, err = j.ListReport(ctx, "")
	if err != nil || !l.Partial() || len(l.Dead) != 0 || len(l.Lost) != 1 || l.Lost[0].Addr != addrs[0] {
		t.Fatalf("ListReport with node %s lost: %+v, %v; want it named lost, partial", addrs[0], l, err)
	}
	if ents, err := j.List(ctx, ""); err != nil || len(ents) != len(l.Entries) {
		t.Errorf("List = %d names, %v; want ListReport's %d", len(ents), err, len(l.Entries))
	}
}

// TestCountFilesWithADeadNode (hostile trial): with a node of the map
// dead, CountFiles answers that node's keys unavailable, for a directory
// with names on it or not, instead of counting the other nodes' names
// (6 of 10 in the trial, 10 once the node came back) or answering "not
// found" for a directory whose names were all on it. With the node lost
// (its names gone) it counts what is left.
func TestCountFilesWithADeadNode(t *testing.T) {
	addrs, _ := cluster(t, 3, 64<<20)
	j := staticJob(t, Config{}, addrs)
	ctx := context.Background()
	for i := 0; i < 30; i++ {
		if err := j.Put(ctx, fmt.Sprintf("dir/f%02d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := j.CountFiles(ctx, "dir"); err != nil || n != 30 {
		t.Fatalf("CountFiles of the whole map: %d, %v; want 30", n, err)
	}
	m := j.Map()
	m.Dead = map[string]bool{addrs[0]: true}
	j.setMap(m)
	for _, d := range []string{"dir", "nothing-here"} {
		if n, err := j.CountFiles(ctx, d); !errors.Is(err, wire.ErrUnavailable) || !strings.Contains(err.Error(), addrs[0]) {
			t.Errorf("CountFiles(%q) with node %s dead: %d, %v; want it unavailable, naming the node", d, addrs[0], n, err)
		}
	}
	m = j.Map()
	m.Dead = nil
	m.Nodes = m.Nodes[1:]
	m.Lost = []LostNode{{Addr: addrs[0], Weight: 1, Epoch: 2}}
	j.setMap(m)
	ents, err := j.List(ctx, "dir/")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := j.CountFiles(ctx, "dir"); err != nil || n != len(ents) || n == 30 {
		t.Errorf("CountFiles with node %s lost: %d, %v; want the %d names left", addrs[0], n, err, len(ents))
	}
}
