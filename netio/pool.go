package netio

import "math/bits"

// Buffer classes are powers of two from 1 KiB to 64 MiB. A request above the
// largest class gets a plain allocation that the pool later refuses.
const (
	minClassShift = 10
	maxClassShift = 26
	numClasses    = maxClassShift - minClassShift + 1

	// poolClassBytes bounds what one loop keeps idle per class, so a burst of
	// large frames does not pin its buffers forever.
	poolClassBytes = 4 << 20
)

// bufPool is a size-classed free list of byte buffers owned by one loop.
// It is used only on that loop's goroutine, so it needs no locking, and a
// buffer always returns to the loop that handed it out (connections never
// move between loops). It refuses buffers whose capacity is not exactly a
// class size, so a caller's foreign slice can never enter it.
type bufPool struct {
	free [numClasses][][]byte
}

// classOf returns the index of the smallest class holding n bytes, or -1
// when n is larger than the largest class.
func classOf(n int) int {
	if n <= 1<<minClassShift {
		return 0
	}
	shift := bits.Len(uint(n - 1))
	if shift > maxClassShift {
		return -1
	}
	return shift - minClassShift
}

// get returns a buffer with length 0 and capacity of at least n bytes.
func (p *bufPool) get(n int) []byte {
	c := classOf(n)
	if c < 0 {
		return make([]byte, 0, n)
	}
	if l := p.free[c]; len(l) > 0 {
		b := l[len(l)-1]
		l[len(l)-1] = nil
		p.free[c] = l[:len(l)-1]
		return b[:0]
	}
	return make([]byte, 0, 1<<(c+minClassShift))
}

// put returns b to the pool. The caller must not use b afterwards.
func (p *bufPool) put(b []byte) {
	c := classOf(cap(b))
	if c < 0 || cap(b) != 1<<(c+minClassShift) {
		return
	}
	if (len(p.free[c])+1)*cap(b) > poolClassBytes && len(p.free[c]) > 0 {
		return
	}
	p.free[c] = append(p.free[c], b[:0])
}
