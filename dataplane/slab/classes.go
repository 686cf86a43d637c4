package slab

import "math/bits"

// MinChunk is the smallest chunk the arena hands out.
const MinChunk = 64

// directIOAlign is the alignment of every class of at least this size.
const directIOAlign = 4096

// classSizes lists the class sizes for a page size, ascending: a geometric
// ladder (8 steps per doubling, multiples of 16 below 4 KiB and of 4096
// above), each widened to the largest aligned size that fits as many chunks
// in a page, duplicates removed.
func classSizes(pageSize int) []int {
	var out []int
	for s := MinChunk; s <= pageSize; s += ladderStep(s) {
		w := widen(s, pageSize)
		if len(out) == 0 || w > out[len(out)-1] {
			out = append(out, w)
		}
	}
	return out
}

func ladderStep(s int) int {
	step := 1 << (bits.Len(uint(s)) - 1) / 8
	if s < directIOAlign {
		return max(16, step)
	}
	return max(directIOAlign, step)
}

// widen returns the largest multiple of s's alignment that fits as many
// chunks per page as s does.
func widen(s, pageSize int) int {
	align := 16
	if s >= directIOAlign {
		align = directIOAlign
	}
	k := pageSize / s
	return pageSize / k / align * align
}
