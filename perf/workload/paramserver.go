package workload

import (
	"context"
	"encoding/binary"
	"fmt"
)

// paramServer is a synchronous parameter server over a few hot keys. The
// model is Size bytes of uint64 words split into K chunks (model/k, K =
// min(4, workers)), each stored with the round it is at (see versioned).
// Every round each worker reads all K chunks, computes a gradient from
// them and writes it (grad/w/k, stamped with the round); worker k < K also
// aggregates chunk k: it waits for every worker's gradient of the round,
// adds them to the chunk and writes the chunk at the next round. All N
// workers read the K chunks every round: those are the hot keys.
//
// A worker writes round r+1's gradient only after reading the model at
// r+1, which needs every gradient of round r consumed, so overwriting a
// gradient slot never loses one; no store-side atomics are needed.
// The final model is checked against the same arithmetic done locally.
type paramServer struct{}

func init() { workloads["paramserver"] = paramServer{} }

func (paramServer) defaults(s *Spec) {
	if s.Size <= 0 {
		s.Size = 64 << 10
	}
	s.Size = max(s.Size/8*8, 8*int64(psChunks(*s)))
	if s.Rounds <= 0 {
		s.Rounds = 10
	}
}

func psChunks(s Spec) int { return min(4, s.Workers) }

// psChunkWords is the word range [lo, hi) of chunk k.
func psChunkWords(s Spec, k int) (lo, hi int64) { return split(s.Size/8, psChunks(s), k) }

func (paramServer) phases(s Spec) []phase {
	return []phase{
		{name: "init", tasks: 1},
		{name: "train", tasks: s.Workers, timed: true},
		{name: "check", tasks: 1},
	}
}

func (paramServer) keys(s Spec) []string {
	var k []string
	for c := range psChunks(s) {
		k = append(k, key(s, "model/%d", c))
		for w := range s.Workers {
			k = append(k, key(s, "grad/%d/%d", w, c))
		}
	}
	return k
}

func (paramServer) shuffle(map[string][]TaskResult) (float64, bool) { return 0, false }

func (paramServer) run(ctx context.Context, be Backend, t Task) (TaskResult, error) {
	s := t.Spec
	switch t.Phase {
	case "init":
		for c, words := range psInitial(s) {
			if err := be.Put(ctx, key(s, "model/%d", c), versioned(0, encodeWords(words))); err != nil {
				return TaskResult{}, err
			}
		}
		return TaskResult{}, nil
	case "train":
		return TaskResult{}, psTrain(ctx, be, s, t.Index)
	case "check":
		var sum uint64
		for c := range psChunks(s) {
			body, err := readVersion(ctx, be, key(s, "model/%d", c), uint64(s.Rounds))
			if err != nil {
				return TaskResult{Bad: err.Error()}, nil
			}
			sum += hashBytes(body, uint64(c))
		}
		return TaskResult{Sum: sum}, nil
	}
	return TaskResult{}, fmt.Errorf("workload: paramserver has no phase %q", t.Phase)
}

func psTrain(ctx context.Context, be Backend, s Spec, w int) error {
	k := psChunks(s)
	model := make([][]uint64, k)
	for r := range s.Rounds {
		for c := range k {
			body, err := awaitVersion(ctx, be, key(s, "model/%d", c), uint64(r), nil)
			if err != nil {
				return err
			}
			if model[c], err = decodeWords(body); err != nil {
				return fmt.Errorf("model/%d: %w", c, err)
			}
		}
		for c := range k {
			g := psGradient(s, w, r, c, model[c])
			if err := be.Put(ctx, key(s, "grad/%d/%d", w, c), versioned(uint64(r), encodeWords(g))); err != nil {
				return err
			}
		}
		if w < k {
			if err := psAggregate(ctx, be, s, r, w, model[w]); err != nil {
				return err
			}
		}
	}
	return nil
}

// psAggregate adds every worker's round-r gradient of chunk c to it and
// publishes the chunk at round r+1.
func psAggregate(ctx context.Context, be Backend, s Spec, r, c int, chunk []uint64) error {
	next := append([]uint64(nil), chunk...)
	for v := range s.Workers {
		body, err := awaitVersion(ctx, be, key(s, "grad/%d/%d", v, c), uint64(r), nil)
		if err != nil {
			return err
		}
		g, err := decodeWords(body)
		if err != nil || len(g) != len(next) {
			return fmt.Errorf("grad/%d/%d: %d words, want %d (%v)", v, c, len(g), len(next), err)
		}
		for i := range next {
			next[i] += g[i]
		}
	}
	return be.Put(ctx, key(s, "model/%d", c), versioned(uint64(r+1), encodeWords(next)))
}

// psGradient is worker w's round-r update of chunk c: it depends on the
// chunk read, so a stale or torn read changes the final model.
func psGradient(s Spec, w, r, c int, chunk []uint64) []uint64 {
	g := make([]uint64, len(chunk))
	base := mix64(s.Seed ^ uint64(w)<<40 ^ uint64(r)<<20 ^ uint64(c))
	for i, x := range chunk {
		g[i] = (x >> 7) ^ mix64(base+uint64(i))
	}
	return g
}

func psInitial(s Spec) [][]uint64 {
	chunks := make([][]uint64, psChunks(s))
	for c := range chunks {
		lo, hi := psChunkWords(s, c)
		chunks[c] = make([]uint64, hi-lo)
		for i := range chunks[c] {
			chunks[c][i] = mix64(s.Seed + uint64(lo) + uint64(i))
		}
	}
	return chunks
}

// psExpected runs the training locally and returns the final model's
// checksum as the check task computes it.
func psExpected(s Spec) uint64 {
	model := psInitial(s)
	for r := range s.Rounds {
		next := make([][]uint64, len(model))
		for c, chunk := range model {
			next[c] = append([]uint64(nil), chunk...)
			for w := range s.Workers {
				for i, x := range psGradient(s, w, r, c, chunk) {
					next[c][i] += x
				}
			}
		}
		model = next
	}
	var sum uint64
	for c, chunk := range model {
		sum += hashBytes(encodeWords(chunk), uint64(c))
	}
	return sum
}

func (paramServer) verify(s Spec, res map[string][]TaskResult) error {
	chk := res["check"]
	if len(chk) != 1 {
		return fmt.Errorf("%d check results", len(chk))
	}
	if chk[0].Bad != "" {
		return fmt.Errorf("final model: %s", chk[0].Bad)
	}
	if want := psExpected(s); chk[0].Sum != want {
		return fmt.Errorf("final model checksum %#x, want %#x", chk[0].Sum, want)
	}
	return nil
}

func encodeWords(w []uint64) []byte {
	b := make([]byte, 8*len(w))
	for i, x := range w {
		binary.LittleEndian.PutUint64(b[8*i:], x)
	}
	return b
}

func decodeWords(b []byte) ([]uint64, error) {
	if len(b)%8 != 0 {
		return nil, fmt.Errorf("%d bytes is not whole words", len(b))
	}
	w := make([]uint64, len(b)/8)
	for i := range w {
		w[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return w, nil
}

// hashBytes hashes b with a seed (the chunk number, so chunks swapped
// between keys do not sum to the same checksum).
func hashBytes(b []byte, seed uint64) uint64 {
	h := mix64(seed + 0x51ed270b27ea2d53)
	for len(b) >= 8 {
		h = mix64(h ^ binary.LittleEndian.Uint64(b))
		b = b[8:]
	}
	for _, c := range b {
		h = mix64(h ^ uint64(c))
	}
	return h
}
