// Package placement maps a (key, chunk) to one of a job's nodes by weighted
// rendezvous hashing (highest random weight), so a client finds the node
// that owns a value by computation alone, with no metadata lookup.
//
// Each node i gets a score -w_i / ln(u_i), where u_i in (0,1) is a hash of
// the node's id, the key and the chunk number; the highest score wins. Then
// a node receives a share of keys equal to its weight's share of the total
// weight, and adding or removing a node moves only the keys that the added
// node wins or the removed node held: every other key keeps its node.
//
// The hash is part of the placement contract between every client and must
// be stable across processes, machines and versions: FNV-1a 64 over the
// key, then the chunk number mixed in, then the node's id hash, finished
// with the murmur3 64-bit finalizer so that every output bit depends on
// every input bit. Changing it would move every key, so it must not change
// without a map epoch scheme that says which hash a map uses.
package placement

import "math"

// Node is one placement target: its id (the node's data-plane address) and
// its weight. Nodes with a weight that is not positive never receive keys.
type Node struct {
	ID     string
	Weight float64
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// HashID returns the stable hash of a node id used in scores.
func HashID(id string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= fnvPrime
	}
	return fmix64(h)
}

// HashKey returns the stable hash of a (key, chunk) pair used in scores.
func HashKey(key []byte, chunk uint32) uint64 {
	h := uint64(fnvOffset)
	for _, c := range key {
		h ^= uint64(c)
		h *= fnvPrime
	}
	for i := 0; i < 4; i++ {
		h ^= uint64(byte(chunk >> (8 * i)))
		h *= fnvPrime
	}
	return h
}

// fmix64 is murmur3's 64-bit finalizer: a bijection with full avalanche.
func fmix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// score is -w/ln(u) for u derived from the node and key hashes. u is the
// top 53 bits of the mixed hash, offset by half a step so it is never 0 or 1.
func score(w float64, idHash, keyHash uint64) float64 {
	h := fmix64(idHash ^ keyHash)
	u := (float64(h>>11) + 0.5) / (1 << 53)
	return -w / math.Log(u)
}

// Pick returns the index in nodes of the node that owns (key, chunk), or -1
// when no node has a positive weight. It does not allocate.
func Pick(nodes []Node, key []byte, chunk uint32) int {
	kh := HashKey(key, chunk)
	best, bestScore := -1, 0.0
	for i := range nodes {
		w := nodes[i].Weight
		if !(w > 0) || math.IsInf(w, 0) {
			continue
		}
		if s := score(w, HashID(nodes[i].ID), kh); best < 0 || s > bestScore {
			best, bestScore = i, s
		}
	}
	return best
}

// Set is a node list with the ids' hashes computed once, for clients that
// place many keys over the same map. It is immutable and safe for
// concurrent use.
type Set struct {
	nodes []Node
	ids   []uint64
}

// NewSet copies nodes and precomputes their id hashes.
func NewSet(nodes []Node) *Set {
	s := &Set{nodes: append([]Node(nil), nodes...), ids: make([]uint64, len(nodes))}
	for i := range nodes {
		s.ids[i] = HashID(nodes[i].ID)
	}
	return s
}

// Len returns the number of nodes.
func (s *Set) Len() int { return len(s.nodes) }

// Node returns the i-th node.
func (s *Set) Node(i int) Node { return s.nodes[i] }

// Pick is Pick over the set's nodes; it returns the same index.
func (s *Set) Pick(key []byte, chunk uint32) int {
	kh := HashKey(key, chunk)
	best, bestScore := -1, 0.0
	for i := range s.nodes {
		w := s.nodes[i].Weight
		if !(w > 0) || math.IsInf(w, 0) {
			continue
		}
		if sc := score(w, s.ids[i], kh); best < 0 || sc > bestScore {
			best, bestScore = i, sc
		}
	}
	return best
}
