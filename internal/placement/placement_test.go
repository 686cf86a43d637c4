package placement

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"testing"
)

func keys(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, "dir/object-%d", i)
	}
	return out
}

// TestDistributionFollowsWeights places many keys over nodes of unequal
// weight and checks each node's share is within 2 points of its weight
// share.
func TestDistributionFollowsWeights(t *testing.T) {
	nodes := []Node{{"10.0.0.1:7000", 1}, {"10.0.0.2:7000", 2}, {"10.0.0.3:7000", 3}, {"10.0.0.4:7000", 4}}
	const n = 100000
	counts := make([]int, len(nodes))
	for _, k := range keys(n) {
		counts[Pick(nodes, k, 0)]++
	}
	for i, c := range counts {
		want := nodes[i].Weight / 10
		got := float64(c) / n
		if math.Abs(got-want) > 0.02 {
			t.Errorf("node %d: share %.3f, want %.3f", i, got, want)
		}
	}
}

// TestChunksSpread checks that the chunks of one key land on every node.
func TestChunksSpread(t *testing.T) {
	nodes := []Node{{"a:1", 1}, {"b:1", 1}, {"c:1", 1}}
	seen := map[int]int{}
	for c := uint32(0); c < 300; c++ {
		seen[Pick(nodes, []byte("big-object"), c)]++
	}
	for i := range nodes {
		if seen[i] < 60 {
			t.Errorf("node %d got %d of 300 chunks", i, seen[i])
		}
	}
}

// TestMinimalMovement: removing a node moves only its keys; adding one
// moves only keys to the new node, about its weight share of them.
func TestMinimalMovement(t *testing.T) {
	base := []Node{{"n1:7000", 1}, {"n2:7000", 1}, {"n3:7000", 2}, {"n4:7000", 1}}
	ks := keys(20000)
	before := make([]string, len(ks))
	for i, k := range ks {
		before[i] = base[Pick(base, k, 7)].ID
	}
	removed := append(append([]Node(nil), base[:2]...), base[3:]...) // drop n3
	for i, k := range ks {
		after := removed[Pick(removed, k, 7)].ID
		if before[i] != "n3:7000" && after != before[i] {
			t.Fatalf("key %d moved from %s to %s though its node stayed", i, before[i], after)
		}
	}
	added := append(append([]Node(nil), base...), Node{"n5:7000", 1})
	moved := 0
	for i, k := range ks {
		after := added[Pick(added, k, 7)].ID
		if after != before[i] {
			if after != "n5:7000" {
				t.Fatalf("key %d moved from %s to %s, not to the new node", i, before[i], after)
			}
			moved++
		}
	}
	share := float64(moved) / float64(len(ks)) // want about 1/6
	if share < 0.14 || share > 0.19 {
		t.Fatalf("adding a node of weight 1 to total 5 moved %.3f of keys, want about 0.167", share)
	}
}

func TestEdgeCases(t *testing.T) {
	if Pick(nil, []byte("k"), 0) != -1 {
		t.Fatal("empty node list picked a node")
	}
	zero := []Node{{"a", 0}, {"b", -1}, {"c", math.NaN()}, {"d", math.Inf(1)}}
	if Pick(zero, []byte("k"), 0) != -1 {
		t.Fatal("a node without a usable weight was picked")
	}
	one := []Node{{"a", 0}, {"b", 0.5}}
	for _, k := range keys(100) {
		if Pick(one, k, 0) != 1 {
			t.Fatal("zero-weight node picked")
		}
	}
}

// TestStable pins a few placements so an accidental change of the hash,
// which would move every stored key, fails loudly.
func TestStable(t *testing.T) {
	if got := HashKey([]byte("a"), 0); got != 0x6de9d1fe51c9cb4c {
		t.Errorf("HashKey(a,0) = %#x", got)
	}
	if got := HashID("127.0.0.1:7000"); got != 0x51d8684066fafe52 {
		t.Errorf("HashID = %#x", got)
	}
}

// TestHashKeyIsFNV1a checks HashKey against the standard library's FNV-1a
// over the key and the chunk number's four little-endian bytes.
func TestHashKeyIsFNV1a(t *testing.T) {
	for i, k := range keys(50) {
		h := fnv.New64a()
		h.Write(k)
		h.Write(binary.LittleEndian.AppendUint32(nil, uint32(i*7919)))
		if got, want := HashKey(k, uint32(i*7919)), h.Sum64(); got != want {
			t.Fatalf("key %q: %#x, want %#x", k, got, want)
		}
	}
}

func TestSetMatchesPick(t *testing.T) {
	nodes := []Node{{"x:1", 0.2}, {"y:1", 0.5}, {"z:1", 0.3}}
	s := NewSet(nodes)
	if s.Len() != 3 || s.Node(1).ID != "y:1" {
		t.Fatal("set accessors wrong")
	}
	for i, k := range keys(2000) {
		if a, b := Pick(nodes, k, uint32(i)), s.Pick(k, uint32(i)); a != b {
			t.Fatalf("key %d: Pick %d, Set.Pick %d", i, a, b)
		}
	}
}

func benchNodes(n int) []Node {
	nodes := make([]Node, n)
	for i := range nodes {
		nodes[i] = Node{ID: fmt.Sprintf("10.0.0.%d:7000", i), Weight: float64(1 + i%3)}
	}
	return nodes
}

func BenchmarkPick(b *testing.B) {
	for _, n := range []int{2, 8, 32} {
		nodes := benchNodes(n)
		key := []byte("shuffle/part-00042")
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				Pick(nodes, key, uint32(i))
			}
		})
		s := NewSet(nodes)
		b.Run(fmt.Sprintf("set/nodes=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				s.Pick(key, uint32(i))
			}
		})
	}
}
