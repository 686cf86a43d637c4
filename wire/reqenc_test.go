package wire

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/pocketstore/pocket/wire/fb"
)

// builderRequest is Encoder.Request as it was before the hand layout, with
// the generated builder functions. It lives only here, as the baseline the
// benchmark measures against and as a second, independent encoder for the
// differential test.
func builderRequest(b *flatbuffers.Builder, r *Request) []byte {
	b.Reset()
	str := func(s []byte) flatbuffers.UOffsetT {
		if len(s) == 0 {
			return 0
		}
		return b.CreateByteString(s)
	}
	job, key, after := str(r.Job), str(r.Key), str(r.After)
	var tok flatbuffers.UOffsetT
	if len(r.Token) > 0 {
		tok = b.CreateByteVector(r.Token)
	}
	fb.RequestStart(b)
	if job != 0 {
		fb.RequestAddJob(b, job)
	}
	if key != 0 {
		fb.RequestAddKey(b, key)
	}
	if tok != 0 {
		fb.RequestAddToken(b, tok)
	}
	if after != 0 {
		fb.RequestAddAfter(b, after)
	}
	fb.RequestAddEpoch(b, r.Epoch)
	fb.RequestAddVersion(b, r.Version)
	fb.RequestAddObjectSize(b, r.ObjectSize)
	fb.RequestAddLimit(b, r.Limit)
	fb.RequestAddDelimiter(b, r.Delimiter)
	b.Finish(fb.RequestEnd(b))
	return b.FinishedBytes()
}

// noLimits lets DecodeRequest accept any length, so round trips can cover
// lengths past the defaults (the encoder does not enforce limits).
var noLimits = Limits{MaxJobLen: math.MaxInt, MaxKeyLen: math.MaxInt, MaxToken: math.MaxInt}

// checkRequest proves that buf is a Request flatbuffer holding exactly in:
// the package verifier accepts it, its layout obeys the format (see
// checkLayout), DecodeRequest and the generated accessors both read back
// every field, and a vector field is present exactly when it is non-empty.
func checkRequest(t testing.TB, buf []byte, in *Request) {
	t.Helper()
	if err := Verify(buf, &requestSpec); err != nil {
		t.Fatalf("Verify: %v (request %+v)", err, in)
	}
	checkLayout(t, buf)
	var out Request
	if err := DecodeRequest(buf, &noLimits, &out); err != nil {
		t.Fatalf("DecodeRequest: %v", err)
	}
	sameRequest(t, "DecodeRequest", &out, in)

	// The generated accessors, independently of DecodeRequest.
	g := fb.GetRootAsRequest(buf, 0)
	gen := Request{Job: g.Job(), Key: g.Key(), Token: g.TokenBytes(), After: g.After(),
		Epoch: g.Epoch(), Limit: g.Limit(), Delimiter: g.Delimiter(), Version: g.Version(), ObjectSize: g.ObjectSize()}
	sameRequest(t, "fb accessors", &gen, in)
	if g.TokenLength() != len(in.Token) {
		t.Fatalf("TokenLength %d, want %d", g.TokenLength(), len(in.Token))
	}
	tab := g.Table()
	for _, c := range []struct {
		id   int
		want bool
	}{{reqJob, len(in.Job) > 0}, {reqKey, len(in.Key) > 0}, {reqToken, len(in.Token) > 0}, {reqAfter, len(in.After) > 0}} {
		if got := tab.Offset(flatbuffers.VOffsetT(4+2*c.id)) != 0; got != c.want {
			t.Fatalf("field %d present=%v, want %v", c.id, got, c.want)
		}
	}
}

func sameRequest(t testing.TB, how string, got, want *Request) {
	t.Helper()
	if !bytes.Equal(got.Job, want.Job) || !bytes.Equal(got.Key, want.Key) || !bytes.Equal(got.Token, want.Token) ||
		!bytes.Equal(got.After, want.After) || got.Epoch != want.Epoch || got.Limit != want.Limit || got.Delimiter != want.Delimiter ||
		got.Version != want.Version || got.ObjectSize != want.ObjectSize {
		t.Fatalf("%s: got %+v, want %+v", how, *got, *want)
	}
}

// checkLayout checks what Verify does not: the root, vtable, table, fields
// and vectors are aligned as the flatbuffers format requires (relative to
// the buffer's start), uoffsets point forward, no two parts overlap, strings
// end in NUL, and every byte not part of one of them is a zero pad byte (so
// nothing of an earlier request leaks out of a reused buffer).
func checkLayout(t testing.TB, buf []byte) {
	t.Helper()
	le := binary.LittleEndian
	owner := make([]byte, len(buf)) // 0: padding; else a tag for the part the byte belongs to
	claim := func(what string, at, n, alignTo int) {
		t.Helper()
		if at < 0 || at+n > len(buf) {
			t.Fatalf("%s at %d+%d outside %d bytes", what, at, n, len(buf))
		}
		if at%alignTo != 0 {
			t.Fatalf("%s at %d is not %d-aligned", what, at, alignTo)
		}
		for i := at; i < at+n; i++ {
			if owner[i] != 0 {
				t.Fatalf("%s at %d+%d overlaps another part at byte %d", what, at, n, i)
			}
			owner[i] = 1
		}
	}
	claim("root", 0, 4, 4)
	tab := int(le.Uint32(buf))
	claim("soffset", tab, 4, 4)
	vt := tab - int(int32(le.Uint32(buf[tab:])))
	claim("vtable header", vt, 4, 2)
	vsize, tsize := int(le.Uint16(buf[vt:])), int(le.Uint16(buf[vt+2:]))
	nslots := (vsize - 4) / 2
	if vsize%2 != 0 || nslots > len(requestSpec.Fields) {
		t.Fatalf("vtable size %d", vsize)
	}
	claim("vtable slots", vt+4, 2*nslots, 2)
	if nslots > 0 && le.Uint16(buf[vt+4+2*(nslots-1):]) == 0 {
		t.Fatalf("vtable ends in an absent field") // the builder trims these
	}
	for id := 0; id < nslots; id++ {
		off := int(le.Uint16(buf[vt+4+2*id:]))
		if off == 0 {
			continue
		}
		f := tab + off
		width := map[FieldKind]int{Scalar1: 1, Scalar2: 2, Scalar4: 4, Scalar8: 8, String: 4, Bytes: 4}[requestSpec.Fields[id].Kind]
		if off < 4 || off+width > tsize {
			t.Fatalf("field %d at table offset %d+%d outside table of %d", id, off, width, tsize)
		}
		claim("field", f, width, width)
		kind := requestSpec.Fields[id].Kind
		if kind != String && kind != Bytes {
			continue
		}
		rel := int(le.Uint32(buf[f:]))
		if rel <= 0 {
			t.Fatalf("field %d: uoffset %d does not point forward", id, rel)
		}
		p := f + rel
		claim("vector length", p, 4, 4)
		n := int(le.Uint32(buf[p:]))
		if kind == String {
			n++
		}
		claim("vector", p+4, n, 1)
		if kind == String && buf[p+4+n-1] != 0 {
			t.Fatalf("field %d: string does not end in NUL", id)
		}
	}
	for i, o := range owner {
		if o == 0 && buf[i] != 0 {
			t.Fatalf("padding byte %d is %#x, want 0", i, buf[i])
		}
	}
}

// fill returns n bytes that differ between fields (seed) and positions and
// include 0, so a field read from the wrong place or with the wrong length
// shows.
func fill(n int, seed byte) []byte {
	if n == 0 {
		return nil
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*37)
	}
	return b
}

var (
	testEpochs     = []uint64{0, 1, 7, 1 << 32, math.MaxUint64}
	testLimits     = []uint32{0, 1, math.MaxUint32}
	testDelimiters = []byte{0, '/', 0xFF}
)

// TestEncodeRequestCombinations round-trips every combination of short
// lengths for the four vector fields (0 = absent; 1..8 covers each
// alignment remainder) with zero, small and extreme scalars, through one
// reused encoder.
func TestEncodeRequestCombinations(t *testing.T) {
	e := NewEncoder()
	lengths := []int{0, 1, 2, 3, 4, 5, 8}
	if testing.Short() {
		lengths = []int{0, 1, 3, 4}
	}
	for _, lj := range lengths {
		for _, lk := range lengths {
			for _, lt := range lengths {
				for _, la := range lengths {
					in := Request{Job: fill(lj, 'j'), Key: fill(lk, 'k'), Token: fill(lt, 't'), After: fill(la, 'a')}
					for _, in.Epoch = range testEpochs {
						for _, in.Limit = range testLimits {
							for _, in.Delimiter = range testDelimiters {
								checkRequest(t, e.Request(&in), &in)
								in.Version, in.ObjectSize = in.Epoch^1, int64(in.Limit)
								checkRequest(t, e.Request(&in), &in)
								in.Version, in.ObjectSize = 0, 0
							}
						}
					}
				}
			}
		}
	}
}

// TestEncodeRequestLengths sweeps each vector field through every length up
// to its default limit, alone and among the others, and decodes with the
// default limits (as a node does).
func TestEncodeRequestLengths(t *testing.T) {
	lim := DefaultLimits()
	e := NewEncoder()
	base := Request{Job: []byte("job-1"), Key: fill(16, 'k'), Token: fill(32, 't'), After: []byte("a/b"), Epoch: 7, Limit: 100, Delimiter: '/'}
	fields := []struct {
		name string
		max  int
		set  func(r *Request, b []byte)
	}{
		{"job", lim.MaxJobLen, func(r *Request, b []byte) { r.Job = b }},
		{"key", lim.MaxKeyLen, func(r *Request, b []byte) { r.Key = b }},
		{"token", lim.MaxToken, func(r *Request, b []byte) { r.Token = b }},
		{"after", lim.MaxKeyLen, func(r *Request, b []byte) { r.After = b }},
	}
	for _, f := range fields {
		long := fill(f.max, 'x')
		for n := 0; n <= f.max; n++ {
			for _, in := range []Request{{Epoch: 1 << 40}, base} {
				f.set(&in, long[:n])
				buf := e.Request(&in)
				checkRequest(t, buf, &in)
				var out Request
				if err := DecodeRequest(buf, &lim, &out); err != nil {
					t.Fatalf("%s of %d bytes: %v", f.name, n, err)
				}
			}
		}
	}
}

// TestEncodeRequestMatchesBuilder encodes random requests with the hand
// layout and with the builder it replaced, and requires both to decode the
// same. It alternates large and small requests through one encoder, so a
// reused buffer that is not fully rewritten shows up (checkLayout also
// requires the padding to be zero).
func TestEncodeRequestMatchesBuilder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	e := NewEncoder()
	b := flatbuffers.NewBuilder(0)
	length := func() int {
		switch rng.IntN(4) {
		case 0:
			return 0
		case 1:
			return rng.IntN(9)
		case 2:
			return rng.IntN(64)
		}
		return rng.IntN(1500)
	}
	scalar := func(vals ...uint64) uint64 {
		if rng.IntN(2) == 0 {
			return vals[rng.IntN(len(vals))]
		}
		return rng.Uint64()
	}
	for i := 0; i < 3000; i++ {
		in := Request{Job: fill(length(), byte(i)), Key: fill(length(), byte(i+1)), Token: fill(length(), byte(i+2)),
			After: fill(length(), byte(i+3)), Epoch: scalar(0, 1, math.MaxUint64),
			Limit: uint32(scalar(0, 1, math.MaxUint32)), Delimiter: byte(scalar(0, '/')),
			Version: scalar(0, 1, math.MaxUint64), ObjectSize: int64(scalar(0, 1, math.MaxInt64) & math.MaxInt64)}
		mine := e.Request(&in)
		checkRequest(t, mine, &in)
		old := builderRequest(b, &in)
		checkRequest(t, old, &in) // the layout checker accepts the builder's output too
		var a, c Request
		if DecodeRequest(mine, &noLimits, &a) != nil || DecodeRequest(old, &noLimits, &c) != nil {
			t.Fatal("decode failed")
		}
		sameRequest(t, "hand layout vs builder", &a, &c)
	}
}

// TestEncodeRequestCapIsLen: the returned slice ends at the message, so a
// caller appending to it (say, the payload) copies instead of writing into
// the encoder's buffer.
func TestEncodeRequestCapIsLen(t *testing.T) {
	e := NewEncoder()
	in := Request{Job: []byte("job-1"), Key: []byte("k")}
	m := e.Request(&in)
	if cap(m) != len(m) {
		t.Fatalf("cap %d > len %d: an append by the caller would write into the encoder", cap(m), len(m))
	}
	checkRequest(t, m, &in)
}

// TestEncodeRequestEmpty: a request with no fields is still a flatbuffer
// (a node decodes it as an empty request), as the builder made it.
func TestEncodeRequestEmpty(t *testing.T) {
	e := NewEncoder()
	m := e.Request(&Request{})
	if len(m) != 12 {
		t.Errorf("empty request is %d bytes, want 12 (root, 4-byte vtable, soffset)", len(m))
	}
	checkRequest(t, m, &Request{})
}

// TestEncodeRequestNoAllocs: once warm, encoding allocates nothing, also
// for requests at the default limits.
func TestEncodeRequestNoAllocs(t *testing.T) {
	lim := DefaultLimits()
	e := NewEncoder()
	big := Request{Job: fill(lim.MaxJobLen, 'j'), Key: fill(lim.MaxKeyLen, 'k'), Token: fill(lim.MaxToken, 't'),
		After: fill(lim.MaxKeyLen, 'a'), Epoch: 9, Limit: 1000, Delimiter: '/'}
	small := Request{Job: []byte("job-1"), Key: fill(16, 'k'), Token: fill(32, 't'), Epoch: 7}
	e.Request(&big)
	if n := testing.AllocsPerRun(100, func() { e.Request(&big); e.Request(&small) }); n != 0 {
		t.Fatalf("%.1f allocations per request pair", n)
	}
}

// BenchmarkEncodeRequest measures a typical get's request metadata with the
// builder the encoder used to use and with the hand layout, side by side.
func BenchmarkEncodeRequest(b *testing.B) {
	req := Request{Job: []byte("job-1"), Key: []byte("0123456789abcdef"), Token: fill(32, 't'), Epoch: 7}
	b.Run("builder", func(b *testing.B) {
		fbb := flatbuffers.NewBuilder(512)
		b.ReportAllocs()
		for b.Loop() {
			builderRequest(fbb, &req)
		}
	})
	b.Run("direct", func(b *testing.B) {
		e := NewEncoder()
		b.ReportAllocs()
		for b.Loop() {
			e.Request(&req)
		}
	})
}
