package workload

import (
	"encoding/binary"
	"math/bits"
)

// Sort records: RecordSize bytes each, the first KeySize of them the key
// (as in the sort benchmark, gensort), the rest a payload that names the
// record's index so a duplicated or lost record changes the checksum.
const (
	RecordSize = 100
	KeySize    = 10
)

// mix64 is a 64-bit finalizer (splitmix64's): a bijection that spreads
// every input bit over the output.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// genRecord fills rec (RecordSize bytes) with record idx of the input of
// seed: a pseudo-random key and a payload derived from idx.
func genRecord(seed, idx uint64, rec []byte) {
	a := mix64(seed ^ idx*0x9e3779b97f4a7c15)
	b := mix64(a + idx)
	binary.BigEndian.PutUint64(rec[0:8], a)
	binary.BigEndian.PutUint16(rec[8:10], uint16(b))
	binary.LittleEndian.PutUint64(rec[10:18], idx)
	f := b
	for off := 18; off+8 <= RecordSize; off += 8 {
		f = f*6364136223846793005 + 1442695040888963407
		binary.LittleEndian.PutUint64(rec[off:], f)
	}
	binary.LittleEndian.PutUint16(rec[RecordSize-2:], uint16(f>>48))
}

// recordHash is a 64-bit hash of one record; the checksum of a set of
// records is the sum of their hashes, which does not depend on order.
func recordHash(rec []byte) uint64 {
	h := uint64(0x243f6a8885a308d3)
	off := 0
	for ; off+8 <= len(rec); off += 8 {
		h = bits.RotateLeft64((h^binary.LittleEndian.Uint64(rec[off:]))*0x9fb21c651e98df25, 29)
	}
	for ; off < len(rec); off++ {
		h = (h ^ uint64(rec[off])) * 0x100000001b3
	}
	return mix64(h)
}

// checksum is the sum of the record hashes of buf (whole records only).
func checksum(buf []byte) (sum uint64, n int64) {
	for off := 0; off+RecordSize <= len(buf); off += RecordSize {
		sum += recordHash(buf[off : off+RecordSize])
		n++
	}
	return sum, n
}

// bucket is the reducer of a key among r by range partitioning on the
// key's first 16 bits (keys are uniform, so partitions are even).
func bucket(key []byte, r int) int {
	return int(uint32(binary.BigEndian.Uint16(key)) * uint32(r) >> 16)
}

// split cuts n items into parts nearly equal ranges; part i is
// [lo, hi).
func split(n int64, parts, i int) (lo, hi int64) {
	return n * int64(i) / int64(parts), n * int64(i+1) / int64(parts)
}
