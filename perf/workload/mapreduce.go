package workload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
)

// mapReduce is a PyWren-style word count: N map tasks each count the
// words of one text partition and write their counts; one reduce task
// reads every map's counts and writes the total. The generator counts
// the words it writes, and the check compares the stored total with that.
//
// Keys: text/P, counts/P, total. Counts are text, one "word count\n" line
// per vocabulary word, in vocabulary order.
type mapReduce struct{}

func init() { workloads["mapreduce"] = mapReduce{} }

// vocabSize is the number of distinct words in the generated text.
const vocabSize = 1024

// vocab is the generated text's vocabulary, word i being vocab[i].
var vocab = func() []string {
	v := make([]string, vocabSize)
	for i := range v {
		// Word lengths 3..10, letters from the index's hash.
		h := mix64(uint64(i) + 1)
		n := 3 + int(h%8)
		b := make([]byte, n)
		for j := range b {
			h = mix64(h)
			b[j] = 'a' + byte(h%26)
		}
		v[i] = string(b) + strconv.Itoa(i) // unique even if letters repeat
	}
	return v
}()

var vocabIndex = func() map[string]int {
	m := make(map[string]int, vocabSize)
	for i, w := range vocab {
		m[w] = i
	}
	return m
}()

func (mapReduce) defaults(s *Spec) {
	if s.Size <= 0 {
		s.Size = 16 << 20
	}
}

func (mapReduce) phases(s Spec) []phase {
	return []phase{
		{name: "gen", tasks: s.Workers},
		{name: "map", tasks: s.Workers, timed: true},
		{name: "reduce", tasks: 1, timed: true},
		{name: "check", tasks: 1},
	}
}

func (mapReduce) keys(s Spec) []string {
	k := []string{key(s, "total")}
	for i := range s.Workers {
		k = append(k, key(s, "text/%d", i), key(s, "counts/%d", i))
	}
	return k
}

func (mapReduce) shuffle(map[string][]TaskResult) (float64, bool) { return 0, false }

func (mapReduce) run(ctx context.Context, be Backend, t Task) (TaskResult, error) {
	switch t.Phase {
	case "gen":
		text, counts := genText(t.Spec, t.Index)
		return TaskResult{Counts: counts}, be.Put(ctx, key(t.Spec, "text/%d", t.Index), text)
	case "map":
		return wcMap(ctx, be, t)
	case "reduce":
		return wcReduce(ctx, be, t)
	case "check":
		total, err := be.Get(ctx, key(t.Spec, "total"), nil)
		if err != nil {
			return TaskResult{}, err
		}
		counts, err := parseCounts(total)
		if err != nil {
			return TaskResult{Bad: err.Error()}, nil
		}
		return TaskResult{Counts: counts}, nil
	}
	return TaskResult{}, fmt.Errorf("workload: mapreduce has no phase %q", t.Phase)
}

// genText makes text partition p (Size/Workers bytes, whole words
// separated by spaces) and counts its words as it goes.
func genText(s Spec, p int) ([]byte, []int64) {
	lo, hi := split(s.Size, s.Workers, p)
	text := make([]byte, 0, hi-lo+16)
	counts := make([]int64, vocabSize)
	x := mix64(s.Seed ^ uint64(p)<<32)
	for int64(len(text)) < hi-lo {
		x = mix64(x)
		// Two draws skew the distribution towards low indexes, as words are.
		i := int(min(x%vocabSize, (x>>32)%vocabSize))
		text = append(append(text, vocab[i]...), ' ')
		counts[i]++
	}
	return text, counts
}

func wcMap(ctx context.Context, be Backend, t Task) (TaskResult, error) {
	text, err := be.Get(ctx, key(t.Spec, "text/%d", t.Index), nil)
	if err != nil {
		return TaskResult{}, err
	}
	counts := make([]int64, vocabSize)
	for _, w := range bytes.Fields(text) {
		i, ok := vocabIndex[string(w)]
		if !ok {
			return TaskResult{}, fmt.Errorf("text/%d: unknown word %q", t.Index, w)
		}
		counts[i]++
	}
	return TaskResult{}, be.Put(ctx, key(t.Spec, "counts/%d", t.Index), formatCounts(counts))
}

func wcReduce(ctx context.Context, be Backend, t Task) (TaskResult, error) {
	total := make([]int64, vocabSize)
	for m := range t.Spec.Workers {
		b, err := be.Get(ctx, key(t.Spec, "counts/%d", m), nil)
		if err != nil {
			return TaskResult{}, err
		}
		c, err := parseCounts(b)
		if err != nil {
			return TaskResult{}, fmt.Errorf("counts/%d: %w", m, err)
		}
		for i, n := range c {
			total[i] += n
		}
	}
	return TaskResult{}, be.Put(ctx, key(t.Spec, "total"), formatCounts(total))
}

func formatCounts(c []int64) []byte {
	var b []byte
	for i, n := range c {
		b = append(b, vocab[i]...)
		b = append(b, ' ')
		b = strconv.AppendInt(b, n, 10)
		b = append(b, '\n')
	}
	return b
}

// errCounts: a counts value that is not vocabSize "word count" lines in
// vocabulary order.
var errCounts = errors.New("workload: malformed counts")

func parseCounts(b []byte) ([]int64, error) {
	c := make([]int64, 0, vocabSize)
	for len(b) > 0 {
		line, rest, ok := bytes.Cut(b, []byte{'\n'})
		if !ok {
			return nil, fmt.Errorf("%w: unterminated line", errCounts)
		}
		w, n, ok := bytes.Cut(line, []byte{' '})
		if !ok || len(c) >= vocabSize || string(w) != vocab[len(c)] {
			return nil, fmt.Errorf("%w: line %d is %q", errCounts, len(c)+1, line)
		}
		v, err := strconv.ParseInt(string(n), 10, 64)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("%w: line %d count %q", errCounts, len(c)+1, n)
		}
		c, b = append(c, v), rest
	}
	if len(c) != vocabSize {
		return nil, fmt.Errorf("%w: %d lines, want %d", errCounts, len(c), vocabSize)
	}
	return c, nil
}

func (mapReduce) verify(s Spec, res map[string][]TaskResult) error {
	want := make([]int64, vocabSize)
	for _, g := range res["gen"] {
		if len(g.Counts) != vocabSize {
			return fmt.Errorf("generator %d reported %d counts", g.Index, len(g.Counts))
		}
		for i, n := range g.Counts {
			want[i] += n
		}
	}
	chk := res["check"]
	if len(chk) != 1 {
		return fmt.Errorf("%d check results", len(chk))
	}
	if chk[0].Bad != "" {
		return errors.New(chk[0].Bad)
	}
	for i, n := range chk[0].Counts {
		if n != want[i] {
			return fmt.Errorf("count of %q is %d, want %d", vocab[i], n, want[i])
		}
	}
	return nil
}
