package workload

import (
	"context"
	"encoding/binary"
	"fmt"
)

// stateChain is an ExCamera-style chain: N tasks start together, each
// reads its own input chunk (in/i, Size/N bytes) and folds it into a
// digest in parallel with the others (ExCamera's parallel encode); then
// task i waits for task i-1's state (state/i-1), combines it with its
// digest and writes state/i (the serial rebase). The last state is
// checked against the same chain computed locally from the generator.
type stateChain struct{}

func init() { workloads["statechain"] = stateChain{} }

// stateWords is the size of a task's state in 64-bit words (16 KiB).
const stateWords = 2048

func (stateChain) defaults(s *Spec) {
	if s.Size <= 0 {
		s.Size = 16 << 20
	}
}

func (stateChain) phases(s Spec) []phase {
	return []phase{
		{name: "gen", tasks: s.Workers},
		{name: "chain", tasks: s.Workers, timed: true},
		{name: "check", tasks: 1},
	}
}

func (stateChain) keys(s Spec) []string {
	var k []string
	for i := range s.Workers {
		k = append(k, key(s, "in/%d", i), key(s, "state/%d", i))
	}
	return k
}

func (stateChain) shuffle(map[string][]TaskResult) (float64, bool) { return 0, false }

func (stateChain) run(ctx context.Context, be Backend, t Task) (TaskResult, error) {
	s := t.Spec
	switch t.Phase {
	case "gen":
		return TaskResult{}, be.Put(ctx, key(s, "in/%d", t.Index), scInput(s, t.Index))
	case "chain":
		return TaskResult{}, scStep(ctx, be, s, t.Index)
	case "check":
		last := s.Workers - 1
		body, err := readVersion(ctx, be, key(s, "state/%d", last), uint64(last))
		if err != nil {
			return TaskResult{Bad: err.Error()}, nil
		}
		return TaskResult{Sum: hashBytes(body, 0)}, nil
	}
	return TaskResult{}, fmt.Errorf("workload: statechain has no phase %q", t.Phase)
}

// scInput is task i's input chunk.
func scInput(s Spec, i int) []byte {
	lo, hi := split(s.Size, s.Workers, i)
	b := make([]byte, (hi-lo+7)/8*8)
	x := mix64(s.Seed ^ uint64(i)<<48)
	for off := 0; off < len(b); off += 8 {
		x = x*6364136223846793005 + 1442695040888963407
		binary.LittleEndian.PutUint64(b[off:], x)
	}
	return b[:hi-lo]
}

// scDigest folds an input chunk into stateWords words.
func scDigest(in []byte) []uint64 {
	d := make([]uint64, stateWords)
	for off := 0; off+8 <= len(in); off += 8 {
		w := off / 8 % stateWords
		d[w] = (d[w] ^ binary.LittleEndian.Uint64(in[off:])) * 0x9fb21c651e98df25
	}
	return d
}

// scCombine is state i from state i-1 (nil for the first task) and task
// i's digest; it is order-sensitive, so a missing or repeated link shows.
func scCombine(prev, digest []uint64, i int) []uint64 {
	next := make([]uint64, stateWords)
	carry := uint64(i)
	for w := range next {
		var p uint64
		if prev != nil {
			p = prev[w]
		}
		carry = mix64(p + digest[w] + carry)
		next[w] = carry
	}
	return next
}

func scStep(ctx context.Context, be Backend, s Spec, i int) error {
	in, err := be.Get(ctx, key(s, "in/%d", i), nil)
	if err != nil {
		return err
	}
	digest := scDigest(in)
	var prev []uint64
	if i > 0 {
		body, err := awaitVersion(ctx, be, key(s, "state/%d", i-1), uint64(i-1), nil)
		if err != nil {
			return err
		}
		if prev, err = decodeWords(body); err != nil || len(prev) != stateWords {
			return fmt.Errorf("state/%d: %d words (%v)", i-1, len(prev), err)
		}
	}
	state := scCombine(prev, digest, i)
	return be.Put(ctx, key(s, "state/%d", i), versioned(uint64(i), encodeWords(state)))
}

func (stateChain) verify(s Spec, res map[string][]TaskResult) error {
	chk := res["check"]
	if len(chk) != 1 {
		return fmt.Errorf("%d check results", len(chk))
	}
	if chk[0].Bad != "" {
		return fmt.Errorf("final state: %s", chk[0].Bad)
	}
	var state []uint64
	for i := range s.Workers {
		state = scCombine(state, scDigest(scInput(s, i)), i)
	}
	if want := hashBytes(encodeWords(state), 0); chk[0].Sum != want {
		return fmt.Errorf("final state checksum %#x, want %#x", chk[0].Sum, want)
	}
	return nil
}
