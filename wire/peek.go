package wire

import "encoding/binary"

// PeekKey reads the job and key of a Request flatbuffer without verifying
// the rest of it. Every offset is bounds-checked, so any input is safe and
// none panics, but a malformed buffer may yield bytes that DecodeRequest
// would refuse: use it only for hints, such as warming the caches for the
// lookups of requests still waiting in a read buffer, never to serve one.
// ok is false when either field is absent or out of bounds. The slices
// alias meta.
func PeekKey(meta []byte) (job, key []byte, ok bool) {
	tab, ok := u32(meta, 0)
	if !ok {
		return nil, nil, false
	}
	soff, ok := u32(meta, int(tab))
	if !ok {
		return nil, nil, false
	}
	vt := int64(tab) - int64(int32(soff))
	if vt < 0 || vt > int64(len(meta)) {
		return nil, nil, false
	}
	if job, ok = peekString(meta, int(tab), int(vt), reqJob); !ok {
		return nil, nil, false
	}
	if key, ok = peekString(meta, int(tab), int(vt), reqKey); !ok {
		return nil, nil, false
	}
	return job, key, true
}

// peekString returns string field id of the table at tab whose vtable is at
// vt, or false when it is absent or any part lies outside b.
func peekString(b []byte, tab, vt, id int) ([]byte, bool) {
	vsize, ok := u16(b, vt)
	if !ok || 4+2*id+2 > int(vsize) {
		return nil, false
	}
	fo, ok := u16(b, vt+4+2*id)
	if !ok || fo == 0 {
		return nil, false
	}
	at := tab + int(fo)
	rel, ok := u32(b, at)
	if !ok {
		return nil, false
	}
	s := int64(at) + int64(rel)
	if s > int64(len(b)) {
		return nil, false
	}
	n, ok := u32(b, int(s))
	if !ok || int64(n) > int64(len(b))-s-4 {
		return nil, false
	}
	return b[s+4 : s+4+int64(n)], true
}

func u32(b []byte, i int) (uint32, bool) {
	if i < 0 || i > len(b)-4 {
		return 0, false
	}
	return binary.LittleEndian.Uint32(b[i:]), true
}

func u16(b []byte, i int) (uint16, bool) {
	if i < 0 || i > len(b)-2 {
		return 0, false
	}
	return binary.LittleEndian.Uint16(b[i:]), true
}
