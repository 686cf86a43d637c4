package workload

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"
)

// sortJob is a two-stage sort: N mappers each read an input partition and
// write one shuffle partition per reducer (range partitioning on the key);
// N reducers each read their shuffle partitions, sort them and write one
// sorted output. Check tasks read the outputs back.
//
// Keys: in/P (input), sh/M/R (mapper M's records for reducer R), out/R.
type sortJob struct{}

func init() { workloads["sort"] = sortJob{} }

// ioParallel is the most puts or gets one task has in flight.
const ioParallel = 4

func (sortJob) defaults(s *Spec) {
	if s.Size <= 0 {
		s.Size = 64 << 20
	}
}

func (sortJob) phases(s Spec) []phase {
	return []phase{
		{name: "gen", tasks: s.Workers},
		{name: "map", tasks: s.Workers, timed: true},
		{name: "reduce", tasks: s.Workers, timed: true},
		{name: "check", tasks: s.Workers},
	}
}

func (sortJob) keys(s Spec) []string {
	var k []string
	for i := range s.Workers {
		k = append(k, key(s, "in/%d", i), key(s, "out/%d", i))
		for r := range s.Workers {
			k = append(k, key(s, "sh/%d/%d", i, r))
		}
	}
	return k
}

func records(s Spec) int64 { return s.Size / RecordSize }

func (sortJob) run(ctx context.Context, be Backend, t Task) (TaskResult, error) {
	switch t.Phase {
	case "gen":
		return sortGen(ctx, be, t)
	case "map":
		return sortMap(ctx, be, t)
	case "reduce":
		return sortReduce(ctx, be, t)
	case "check":
		return sortCheck(ctx, be, t)
	}
	return TaskResult{}, fmt.Errorf("workload: sort has no phase %q", t.Phase)
}

// sortGen writes input partition t.Index and reports its checksum,
// computed from the generated records before they reach the store.
func sortGen(ctx context.Context, be Backend, t Task) (TaskResult, error) {
	lo, hi := split(records(t.Spec), t.Spec.Workers, t.Index)
	buf := make([]byte, (hi-lo)*RecordSize)
	for i := lo; i < hi; i++ {
		genRecord(t.Spec.Seed, uint64(i), buf[(i-lo)*RecordSize:])
	}
	sum, n := checksum(buf)
	return TaskResult{Sum: sum, Count: n}, be.Put(ctx, key(t.Spec, "in/%d", t.Index), buf)
}

// sortMap reads its input partition and writes one partition per reducer.
func sortMap(ctx context.Context, be Backend, t Task) (TaskResult, error) {
	in, err := be.Get(ctx, key(t.Spec, "in/%d", t.Index), nil)
	if err != nil {
		return TaskResult{}, err
	}
	if len(in)%RecordSize != 0 {
		return TaskResult{}, fmt.Errorf("input partition of %d bytes is not whole records", len(in))
	}
	parts := partition(in, t.Spec.Workers)
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(ioParallel)
	for r, p := range parts {
		g.Go(func() error { return be.Put(gctx, key(t.Spec, "sh/%d/%d", t.Index, r), p) })
	}
	err = g.Wait()
	return TaskResult{IOSeconds: time.Since(start).Seconds()}, err
}

// partition splits records by reducer into slices of one new buffer.
func partition(in []byte, reducers int) [][]byte {
	counts := make([]int, reducers)
	for off := 0; off < len(in); off += RecordSize {
		counts[bucket(in[off:], reducers)]++
	}
	out := make([]byte, len(in))
	parts := make([][]byte, reducers)
	at := 0
	for r, c := range counts {
		parts[r] = out[at : at : at+c*RecordSize]
		at += c * RecordSize
	}
	for off := 0; off < len(in); off += RecordSize {
		r := bucket(in[off:], reducers)
		parts[r] = append(parts[r], in[off:off+RecordSize]...)
	}
	return parts
}

// sortReduce reads the shuffle partitions of reducer t.Index, sorts them
// and writes the output.
func sortReduce(ctx context.Context, be Backend, t Task) (TaskResult, error) {
	start := time.Now()
	parts := make([][]byte, t.Spec.Workers)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(ioParallel)
	for m := range parts {
		g.Go(func() (err error) {
			parts[m], err = be.Get(gctx, key(t.Spec, "sh/%d/%d", m, t.Index), nil)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return TaskResult{}, err
	}
	ioSecs := time.Since(start).Seconds()
	out, err := sortRecords(parts)
	if err != nil {
		return TaskResult{}, err
	}
	return TaskResult{IOSeconds: ioSecs}, be.Put(ctx, key(t.Spec, "out/%d", t.Index), out)
}

// sortEntry locates one record for sorting: its key as a 64-bit prefix
// and the 16 bits after it, and where the record is.
type sortEntry struct {
	hi   uint64
	lo   uint16
	part uint16
	off  uint32
}

// sortRecords merges parts into one buffer sorted by key.
func sortRecords(parts [][]byte) ([]byte, error) {
	n := 0
	for _, p := range parts {
		if len(p)%RecordSize != 0 {
			return nil, fmt.Errorf("shuffle partition of %d bytes is not whole records", len(p))
		}
		n += len(p) / RecordSize
	}
	idx := make([]sortEntry, 0, n)
	for pi, p := range parts {
		for off := 0; off < len(p); off += RecordSize {
			idx = append(idx, sortEntry{
				hi: binary.BigEndian.Uint64(p[off:]), lo: binary.BigEndian.Uint16(p[off+8:]),
				part: uint16(pi), off: uint32(off),
			})
		}
	}
	slices.SortFunc(idx, func(a, b sortEntry) int {
		if c := cmp.Compare(a.hi, b.hi); c != 0 {
			return c
		}
		return cmp.Compare(a.lo, b.lo)
	})
	out := make([]byte, 0, n*RecordSize)
	for _, e := range idx {
		out = append(out, parts[e.part][e.off:e.off+RecordSize]...)
	}
	return out, nil
}

// sortCheck reads output t.Index back and checks it: whole records, in
// key order, every key in this reducer's range. It reports the checksum,
// the count and the first and last keys for the checks across outputs.
func sortCheck(ctx context.Context, be Backend, t Task) (TaskResult, error) {
	out, err := be.Get(ctx, key(t.Spec, "out/%d", t.Index), nil)
	if err != nil {
		return TaskResult{}, err
	}
	var res TaskResult
	res.Bad = checkSorted(out, t.Spec.Workers, t.Index)
	res.Sum, res.Count = checksum(out)
	if n := len(out); n >= RecordSize {
		res.First = bytes.Clone(out[:KeySize])
		res.Last = bytes.Clone(out[n-RecordSize : n-RecordSize+KeySize])
	}
	return res, nil
}

func checkSorted(out []byte, reducers, r int) string {
	if len(out)%RecordSize != 0 {
		return fmt.Sprintf("output %d: %d bytes is not whole records", r, len(out))
	}
	for off := 0; off < len(out); off += RecordSize {
		if b := bucket(out[off:], reducers); b != r {
			return fmt.Sprintf("output %d: record %d belongs to reducer %d", r, off/RecordSize, b)
		}
		if off > 0 && bytes.Compare(out[off-RecordSize:off-RecordSize+KeySize], out[off:off+KeySize]) > 0 {
			return fmt.Sprintf("output %d: record %d out of order", r, off/RecordSize)
		}
	}
	return ""
}

// verify: every output sorted and in range, outputs in order, and the
// outputs hold exactly the input's records (count and checksum).
func (sortJob) verify(s Spec, res map[string][]TaskResult) error {
	var inSum, outSum uint64
	var inN, outN int64
	for _, g := range res["gen"] {
		inSum, inN = inSum+g.Sum, inN+g.Count
	}
	var errs []error
	var last []byte
	for _, c := range res["check"] {
		if c.Bad != "" {
			errs = append(errs, errors.New(c.Bad))
		}
		outSum, outN = outSum+c.Sum, outN+c.Count
		if c.Count == 0 {
			continue
		}
		if last != nil && bytes.Compare(last, c.First) > 0 {
			errs = append(errs, fmt.Errorf("output %d starts before the end of the one before it", c.Index))
		}
		last = c.Last
	}
	if inN != records(s) || outN != inN {
		errs = append(errs, fmt.Errorf("records: generated %d of %d, output %d", inN, records(s), outN))
	}
	if outSum != inSum {
		errs = append(errs, fmt.Errorf("checksum of the output %#x, of the input %#x", outSum, inSum))
	}
	return errors.Join(errs...)
}

func (sortJob) shuffle(res map[string][]TaskResult) (float64, bool) {
	return maxIO(res["map"]) + maxIO(res["reduce"]), true
}

func maxIO(rs []TaskResult) float64 {
	m := 0.0
	for _, r := range rs {
		m = max(m, r.IOSeconds)
	}
	return m
}
