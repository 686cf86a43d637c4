package wire

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// Hostile probes of decodeRequest: inputs a malicious client can put in a
// request frame's metadata. Each must neither panic nor differ from the
// old path (Verify and the accessors, referenceDecode), nor return a slice
// reaching past meta or its own field, nor allocate.

// hostileBuf is a buffer in which a test lays out a request by hand.
type hostileBuf struct{ b []byte }

func newHostile(size int) *hostileBuf { return &hostileBuf{b: make([]byte, size)} }

func (h *hostileBuf) u16(at int, v uint16) *hostileBuf {
	binary.LittleEndian.PutUint16(h.b[at:], v)
	return h
}

func (h *hostileBuf) u32(at int, v uint32) *hostileBuf {
	binary.LittleEndian.PutUint32(h.b[at:], v)
	return h
}

// request writes the root at 0 pointing at tab, the soffset making the
// vtable lie at vt, and the vtable's size, table size and field offsets.
func (h *hostileBuf) request(tab, vt int, osize uint16, offs ...uint16) *hostileBuf {
	h.u32(0, uint32(tab))
	h.u32(tab, uint32(int32(tab-vt)))
	h.u16(vt, uint16(4+2*len(offs)))
	h.u16(vt+2, osize)
	for i, o := range offs {
		h.u16(vt+4+2*i, o)
	}
	return h
}

// withinField fails t unless s lies inside meta and its capacity ends
// with its length.
func withinField(t *testing.T, meta, s []byte, name string) {
	t.Helper()
	if s == nil {
		return
	}
	if cap(s) != len(s) {
		t.Fatalf("meta %x: %s has capacity %d past its length %d", meta, name, cap(s), len(s))
	}
	if len(s) == 0 {
		return
	}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(meta)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	if p < lo || p+uintptr(len(s)) > lo+uintptr(len(meta)) {
		t.Fatalf("meta %x: %s (%d bytes) lies outside meta", meta, name, len(s))
	}
}

// hostileCheck runs decodeRequest on meta, fails on a panic, a difference
// from the old path or a slice outside meta, and returns its error.
func hostileCheck(t *testing.T, meta []byte) (r Request, err error) {
	t.Helper()
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("meta %x: decodeRequest panicked: %v", meta, p)
			}
		}()
		err = decodeRequest(meta, &r)
	}()
	sameDecode(t, meta)
	if err == nil {
		withinField(t, meta, r.Job, "job")
		withinField(t, meta, r.Key, "key")
		withinField(t, meta, r.Token, "token")
		withinField(t, meta, r.After, "after")
	}
	return r, err
}

// hostileCases are hand-made hostile metadata, each with the error the old
// path gives it (nil: accepted).
func hostileCases() []struct {
	name string
	meta []byte
	want error
} {
	type c = struct {
		name string
		meta []byte
		want error
	}
	var cs []c
	add := func(name string, m []byte, want error) { cs = append(cs, c{name, m, want}) }

	add("root 0xffffffff", newHostile(16).u32(0, math.MaxUint32).b, errRequestTable)
	add("root 0x7ffffffc", newHostile(16).u32(0, 0x7ffffffc).b, errRequestTable)
	add("root at the last 4 bytes, soffset 0", newHostile(16).u32(0, 12).b, errRequestVtableSize)
	add("root at len-3", newHostile(16).u32(0, 13).b, errRequestTable)
	add("soffset MinInt32 (vtable 2 GiB ahead)", newHostile(16).u32(0, 4).u32(4, 0x80000000).b, errRequestVtable)
	add("soffset MaxInt32 (vtable 2 GiB behind)", newHostile(16).u32(0, 4).u32(4, 0x7fffffff).b, errRequestVtable)
	add("soffset -1", newHostile(16).u32(0, 4).u32(4, math.MaxUint32).b, errRequestVtableSize)
	add("soffset past the start", newHostile(16).u32(0, 4).u32(4, 5).b, errRequestVtable)
	add("vtable at the last 3 bytes", newHostile(16).u32(0, 4).u32(4, soff(4-13)).b, errRequestVtable)
	// The table's soffset is its own vtable: vsize is soffset's low half.
	add("vtable is the table (soffset 0)", newHostile(16).u32(0, 4).b, errRequestVtableSize)
	add("vsize odd", newHostile(32).request(8, 4, 8).u16(4, 5).b, errRequestVtableSize)
	add("vsize 2", newHostile(32).request(8, 4, 8).u16(4, 2).b, errRequestVtableSize)
	add("vsize 0xfffe", newHostile(32).request(8, 4, 8).u16(4, 0xfffe).b, errRequestVtableSize)
	add("osize 0xffff", newHostile(32).request(8, 4, 0xffff).b, errRequestVtableSize)
	add("osize 3", newHostile(32).request(8, 4, 3).b, errRequestVtableSize)
	add("osize to the last byte", newHostile(32).request(8, 4, 24).b, nil)
	add("osize one past", newHostile(32).request(8, 4, 25).b, errRequestVtableSize)
	// Field offsets of 0xffff: far past any table.
	for id := range reqFields {
		offs := make([]uint16, id+1)
		offs[id] = 0xffff
		add("field offset 0xffff", newHostile(80).request(32, 4, 40, offs...).b, errRequestField)
	}
	// Every vector's uoffset 0xffffffff: in uint32 arithmetic (the
	// accessors') it wraps to point 1 byte back; refused.
	for _, id := range []int{reqJob, reqKey, reqToken, reqAfter} {
		offs := make([]uint16, id+1)
		offs[id] = 4
		add("uoffset 0xffffffff", newHostile(64).request(24, 4, 8, offs...).u32(28, math.MaxUint32).b, errRequestVector)
		// uoffset wrapping to the root (0): 2^32 - 28.
		add("uoffset wraps to 0", newHostile(64).request(24, 4, 8, offs...).u32(28, uint32(1<<32-28)).b, errRequestVector)
		// length 0xffffffff at a vector inside the buffer.
		add("length 0xffffffff", newHostile(64).request(24, 4, 8, offs...).u32(28, 4).u32(32, math.MaxUint32).b, errRequestVectorLen)
		// length 0x7fffffff.
		add("length 0x7fffffff", newHostile(64).request(24, 4, 8, offs...).u32(28, 4).u32(32, math.MaxInt32).b, errRequestVectorLen)
		// the vector runs exactly to the end of meta: a string lacks room
		// for its NUL, a byte vector fits.
		var want error
		if id != reqToken {
			want = errRequestVectorLen
		}
		add("vector to the last byte", newHostile(64).request(24, 4, 8, offs...).u32(28, 4).u32(32, 64-36).b, want)
		// the vector's length word at the last 3 bytes.
		add("length word cut", newHostile(64).request(24, 4, 8, offs...).u32(28, 64-3-28).b, errRequestVector)
		// a vector whose uoffset is 0 (points at itself): its length is
		// its own uoffset, 0, so it is an empty present field.
		add("uoffset 0 (self)", newHostile(64).request(24, 4, 8, offs...).b, nil)
	}
	// All four vectors and every scalar on the same 4 bytes of the table:
	// the vectors share one string after the table, the scalars read the
	// uoffset's bytes.
	add("all fields on one slot", newHostile(64).request(32, 4, 12, 4, 4, 4, 4, 4, 4, 4, 4, 4).u32(36, 8).u32(44, 3).b, nil)
	// A vtable after its table (negative soffset), overlapping the
	// table's fields.
	{
		h := newHostile(64)
		h.u32(0, 8)
		h.u32(8, soff(8-12)) // vtable at 12, inside the table
		h.u16(12, 8)         // vsize 8: ids 0 and 1
		h.u16(14, 16)        // osize 16: the table is 8..24
		h.u16(16, 12)        // job's uoffset at table+12 = 20
		h.u16(18, 12)        // key's too: job and key share a vector
		h.u32(20, 8)         // job at 28
		h.u32(28, 2)
		add("vtable inside the table", h.b, nil)
	}
	// A vtable longer than the schema (a newer writer) whose extra slots
	// run to the end of meta.
	{
		h := newHostile(40)
		h.u32(0, 32)
		h.u32(32, uint32(32-4))
		h.u16(4, 28)
		h.u16(6, 4)
		add("newer writer, vtable to the table", h.b, nil)
	}
	return cs
}

func TestHostileDecodeRequestCraftedAgree(t *testing.T) {
	for _, c := range hostileCases() {
		_, err := hostileCheck(t, c.meta)
		if (err == nil) != (c.want == nil) || err != nil && err.Error() != c.want.Error() {
			t.Errorf("%s: meta %x: err %v, want %v", c.name, c.meta, err, c.want)
		}
	}
}

// TestHostileDecodeRequestSharedBytes: fields that overlap (all four
// vectors on one string, every scalar on the same 8 bytes) read as the
// accessors read them, each vector capped at its own end.
func TestHostileDecodeRequestSharedBytes(t *testing.T) {
	m := newHostile(64).request(32, 4, 12, 4, 4, 4, 4, 4, 4, 4, 4, 4).u32(36, 8).u32(44, 3).b
	copy(m[48:], "abc")
	r, err := hostileCheck(t, m)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range [][]byte{r.Job, r.Key, r.Token, r.After} {
		if string(s) != "abc" || cap(s) != 3 {
			t.Fatalf("a shared vector read %q cap %d, want \"abc\" cap 3", s, cap(s))
		}
	}
	if r.Epoch != 8 || r.Limit != 8 || r.Delimiter != 8 {
		t.Fatalf("scalars on the uoffset: %+v", r)
	}
}

// TestHostileDecodeRequestShortMetaDoesNotAllocate: metadata of 1 to 3
// bytes is refused, and like every other refused frame (reqdec.go: "a
// hostile stream of bad requests costs no allocation per frame";
// DecodeRequest: "It does not allocate") must cost no allocation. A
// client can send MetaLen 1 frames back to back on one connection.
func TestHostileDecodeRequestShortMetaDoesNotAllocate(t *testing.T) {
	lim := DefaultLimits()
	var r Request
	for n := 1; n < 4; n++ {
		meta := make([]byte, n)
		sameDecode(t, meta)
		sameDecode(t, bytes.Repeat([]byte{0xff}, n))
		if err := DecodeRequest(meta, &lim, &r); err == nil {
			t.Fatalf("%d-byte meta accepted", n)
		}
		if a := testing.AllocsPerRun(100, func() { _ = DecodeRequest(meta, &lim, &r) }); a != 0 {
			t.Errorf("%d-byte meta: %.1f allocations per refused decode, want 0", n, a)
		}
	}
}

// TestHostileDecodeRequestCraftedDoNotAllocate: none of the crafted
// inputs (4 bytes or more), accepted or refused, allocates.
func TestHostileDecodeRequestCraftedDoNotAllocate(t *testing.T) {
	lim := DefaultLimits()
	var r Request
	for _, c := range hostileCases() {
		if a := testing.AllocsPerRun(20, func() { _ = DecodeRequest(c.meta, &lim, &r) }); a != 0 {
			t.Errorf("%s: %.1f allocations", c.name, a)
		}
	}
}

// hostileStructured builds a request-shaped buffer from rng: plausible
// root, soffset, vtable sizes and field offsets, with vectors whose
// uoffsets and lengths are near the interesting edges (0, the buffer's
// end, 2^31, 2^32).
func hostileStructured(rng *rand.Rand) []byte {
	size := 4 + rng.IntN(96)
	m := make([]byte, size)
	for i := range m {
		if rng.IntN(4) == 0 {
			m[i] = byte(rng.Uint32())
		}
	}
	edge := func(lim int) uint32 {
		lim = min(max(lim, 0), 1<<20)
		switch rng.IntN(8) {
		case 0:
			return math.MaxUint32 - uint32(rng.IntN(8))
		case 1:
			return 1<<31 + uint32(rng.IntN(8)) - 4
		case 2:
			return uint32(lim + rng.IntN(8) - 4)
		default:
			return uint32(rng.IntN(lim + 1))
		}
	}
	put32 := func(at int, v uint32) {
		if at >= 0 && int64(at)+4 <= int64(size) {
			binary.LittleEndian.PutUint32(m[at:], v)
		}
	}
	put16 := func(at int, v uint16) {
		if at >= 0 && int64(at)+2 <= int64(size) {
			binary.LittleEndian.PutUint16(m[at:], v)
		}
	}
	tab := int(edge(size))
	put32(0, uint32(tab))
	vt := rng.IntN(size+8) - 4
	put32(tab, uint32(int32(tab-vt)))
	if rng.IntN(16) == 0 {
		put32(tab, edge(size))
	}
	nf := rng.IntN(reqFields + 4)
	put16(vt, uint16(4+2*nf))
	if rng.IntN(16) == 0 {
		put16(vt, uint16(rng.Uint32()))
	}
	put16(vt+2, uint16(rng.IntN(size+4)))
	for i := range nf {
		if rng.IntN(3) == 0 {
			continue
		}
		off := rng.IntN(size + 2)
		put16(vt+4+2*i, uint16(off))
		if rng.IntN(2) == 0 {
			put32(tab+off, edge(size-tab-off))
			at := tab + off + int(binary.LittleEndian.Uint32(m[min(max(tab+off, 0), size-4):]))
			put32(at, edge(size-at-4))
		}
	}
	return m
}

// TestHostileDecodeRequestStructured runs many structured random buffers
// (deterministic seed) through the old and new paths: they must agree, not
// panic, and keep every slice in meta.
func TestHostileDecodeRequestStructured(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	accepted := 0
	for range 300000 {
		m := hostileStructured(rng)
		if _, err := hostileCheck(t, m); err == nil {
			accepted++
		}
	}
	// The generator must reach the accepting paths too, or it proves
	// little about the field reads.
	if accepted < 1000 {
		t.Fatalf("only %d of the structured buffers accepted", accepted)
	}
	t.Logf("%d accepted", accepted)
}

// FuzzHostileDecodeRequestStructured drives hostileStructured from the
// fuzzer's seed.
func FuzzHostileDecodeRequestStructured(f *testing.F) {
	f.Add(uint64(1), uint64(2))
	f.Fuzz(func(t *testing.T, a, b uint64) {
		rng := rand.New(rand.NewPCG(a, b))
		for range 8 {
			hostileCheck(t, hostileStructured(rng))
		}
	})
}

// soff is an soffset's bytes as a uint32.
func soff(v int) uint32 { return uint32(int32(v)) }

// TestHostileDecodeRequestReusedRequest: a node decodes every frame of a
// connection into one Request. A request with fewer fields, or a refused
// one, after a full one leaves nothing of the earlier one behind.
func TestHostileDecodeRequestReusedRequest(t *testing.T) {
	lim := DefaultLimits()
	e := NewEncoder()
	full := append([]byte(nil), e.Request(&Request{Job: []byte("j"), Key: []byte("k"), Token: []byte("t"),
		After: []byte("a"), Epoch: 1, Limit: 2, Delimiter: '/', Version: 3, ObjectSize: 4})...)
	bad := newHostile(64).request(24, 4, 8, 4).u32(28, math.MaxUint32).b
	for _, next := range [][]byte{e.Request(&Request{Key: []byte("k2")}), bad, {1}} {
		var r Request
		if err := DecodeRequest(full, &lim, &r); err != nil {
			t.Fatal(err)
		}
		err := DecodeRequest(next, &lim, &r)
		want := Request{}
		if err == nil {
			want.Key = []byte("k2")
		}
		if !sameBytes(r.Job, want.Job) || !sameBytes(r.Key, want.Key) || r.Token != nil || r.After != nil ||
			r.Epoch != 0 || r.Limit != 0 || r.Delimiter != 0 || r.Version != 0 || r.ObjectSize != 0 {
			t.Errorf("meta %x after a full request: %+v (err %v), want %+v", next, r, err, want)
		}
	}
}
