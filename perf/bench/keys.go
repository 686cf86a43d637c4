package bench

import (
	"fmt"
	"math/bits"
	"strconv"
)

// Keyspace holds n distinct keys, all of one width, formatted once into a
// single buffer so the generator only slices it: prefix followed by the
// zero-padded index ("b1024-00000042").
type Keyspace struct {
	buf   []byte
	width int
	n     int
}

// minDigits pads indexes so keys keep one width over ordinary key counts.
const minDigits = 8

// NewKeyspace formats n keys (n >= 1) with the given prefix.
func NewKeyspace(prefix string, n int) *Keyspace {
	n = max(n, 1)
	digits := max(len(strconv.Itoa(n-1)), minDigits)
	width := len(prefix) + digits
	buf := make([]byte, 0, n*width)
	for i := range n {
		buf = append(buf, prefix...)
		buf = fmt.Appendf(buf, "%0*d", digits, i)
	}
	return &Keyspace{buf: buf, width: width, n: n}
}

// Len is the number of keys.
func (k *Keyspace) Len() int { return k.n }

// Key returns key i (0 <= i < Len). The slice must not be modified.
func (k *Keyspace) Key(i int) []byte {
	return k.buf[i*k.width : (i+1)*k.width : (i+1)*k.width]
}

// DefaultKeys is the key count used when none is given: as many values of
// size bytes as budget bytes hold (0: DefaultBudget), up to 100,000 and at
// least 1 (100,000 x 1 KiB, or 256 x 1 MiB of DefaultBudget).
func DefaultKeys(size, budget int64) int {
	if budget <= 0 {
		budget = DefaultBudget
	}
	if size <= 0 {
		return 100000
	}
	return int(max(min(100000, budget/size), 1))
}

// Budgets of the default key count (Config.Budget), in bytes of values.
const (
	// DefaultBudget is the budget of a store with room to spare: a node
	// whose tier holds twice as much (NodeBudget), Redis, memcached.
	DefaultBudget = 256 << 20
	// SmallBudget is the budget of a run whose store's capacity the run
	// does not learn and may be small: a --controller run (a job of
	// small nodes), a node that does not answer its usage request.
	SmallBudget = 64 << 20
)

// NodeBudget is the budget of a run against a node with room bytes free
// for the job (NodeRoom): half of them, up to DefaultBudget, so that the
// values' overhead in the tier (a DRAM chunk's) and other jobs' values
// still fit; at least 1 byte (a single key).
func NodeBudget(room int64) int64 {
	return max(min(DefaultBudget, room/2), 1)
}

// NewValue returns a value of size bytes with a recognisable pattern (not
// zeros, so no layer can get away with compressing or skipping it).
func NewValue(size int) []byte {
	v := make([]byte, size)
	for i := range v {
		v[i] = byte('a' + i%26)
	}
	return v
}

// rng is a xorshift64* generator: a few instructions per key, no
// allocation, one per connection so there is no shared state.
type rng struct{ s uint64 }

func newRNG(seed uint64) rng {
	return rng{s: seed*0x9E3779B97F4A7C15 | 1}
}

func (r *rng) next() uint64 {
	r.s ^= r.s >> 12
	r.s ^= r.s << 25
	r.s ^= r.s >> 27
	return r.s * 0x2545F4914F6CDD1D
}

// intn returns a uniform value in [0, n) by multiply-high (Lemire), without
// a division.
func (r *rng) intn(n int) int {
	hi, _ := bits.Mul64(r.next(), uint64(n))
	return int(hi)
}
