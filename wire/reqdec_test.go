package wire

import (
	"bytes"
	"encoding/binary"
	"testing"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/pocketstore/pocket/wire/fb"
)

// referenceDecode is how DecodeRequest read a request before decodeRequest:
// the general verifier, then the generated accessors. decodeRequest must
// agree with it on every input.
func referenceDecode(meta []byte, r *Request) error {
	*r = Request{}
	if err := Verify(meta, &requestSpec); err != nil {
		return err
	}
	var t fb.Request
	t.Init(meta, flatbuffers.GetUOffsetT(meta))
	r.Job, r.Key, r.Token, r.After = t.Job(), t.Key(), t.TokenBytes(), t.After()
	r.Epoch, r.Limit, r.Delimiter = t.Epoch(), t.Limit(), t.Delimiter()
	r.Version, r.ObjectSize = t.Version(), t.ObjectSize()
	return nil
}

// sameDecode fails t unless decodeRequest and referenceDecode agree on meta:
// both refuse it with the same message, or both read the same fields.
func sameDecode(t *testing.T, meta []byte) {
	t.Helper()
	var got, want Request
	gerr, werr := decodeRequest(meta, &got), referenceDecode(meta, &want)
	if (gerr == nil) != (werr == nil) || gerr != nil && gerr.Error() != werr.Error() {
		t.Fatalf("meta %x: error %v, the verifier's %v", meta, gerr, werr)
	}
	if gerr != nil {
		return
	}
	if !sameBytes(got.Job, want.Job) || !sameBytes(got.Key, want.Key) || !sameBytes(got.Token, want.Token) ||
		!sameBytes(got.After, want.After) || got.Epoch != want.Epoch || got.Limit != want.Limit ||
		got.Delimiter != want.Delimiter || got.Version != want.Version || got.ObjectSize != want.ObjectSize {
		t.Fatalf("meta %x: decoded %+v, the accessors %+v", meta, got, want)
	}
	for _, s := range [][]byte{got.Job, got.Key, got.Token, got.After} {
		if cap(s) != len(s) {
			t.Fatalf("meta %x: a field's capacity runs past its end", meta)
		}
	}
}

// sameBytes is bytes.Equal that also tells an absent field (nil) from a
// present empty one.
func sameBytes(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

// requestSeeds are encodings of requests with every field kind present and
// absent.
func requestSeeds() [][]byte {
	e := NewEncoder()
	reqs := []Request{
		{Job: []byte("job-1"), Key: []byte("0123456789abcdef"), Token: bytes.Repeat([]byte{7}, 32), Epoch: 7},
		{After: []byte("a/b"), Limit: 1000, Delimiter: '/'},
		{Job: []byte("j"), Key: []byte("k"), Version: 1 << 40, ObjectSize: 5 << 30},
		{Key: []byte("k"), ObjectSize: -1},
		{},
	}
	var out [][]byte
	for i := range reqs {
		out = append(out, append([]byte(nil), e.Request(&reqs[i])...))
	}
	return out
}

// TestDecodeRequestSameAsVerifyOnCorruptions corrupts every byte of each
// seed encoding in turn (to 0, 0xff and the byte plus one) and cuts each
// seed at every length: decodeRequest must agree with the verifier and the
// accessors on all of them.
func TestDecodeRequestSameAsVerifyOnCorruptions(t *testing.T) {
	for _, seed := range requestSeeds() {
		sameDecode(t, seed)
		for i := range seed {
			for _, b := range []byte{0, 0xff, seed[i] + 1} {
				m := append([]byte(nil), seed...)
				m[i] = b
				sameDecode(t, m)
			}
		}
		for n := range len(seed) {
			sameDecode(t, seed[:n])
		}
	}
}

// TestDecodeRequestOlderAndNewerWriters: a vtable shorter than the schema
// (an older writer) leaves the missing fields zero, and one longer (a newer
// writer's extra fields) is read up to the fields this schema has.
func TestDecodeRequestOlderAndNewerWriters(t *testing.T) {
	// vtable: size, table size, then one offset per field.
	vtable := func(offs ...uint16) []byte {
		b := binary.LittleEndian.AppendUint16(nil, uint16(4+2*len(offs)))
		b = binary.LittleEndian.AppendUint16(b, 16)
		for _, o := range offs {
			b = binary.LittleEndian.AppendUint16(b, o)
		}
		return b
	}
	build := func(vt []byte) []byte {
		// root offset, vtable, then the table: soffset, an 8-byte epoch at +4,
		// padding to 16 bytes.
		tab := 4 + len(vt)
		m := binary.LittleEndian.AppendUint32(nil, uint32(tab))
		m = append(m, vt...)
		m = binary.LittleEndian.AppendUint32(m, uint32(len(vt)))
		m = binary.LittleEndian.AppendUint64(m, 42)
		return append(m, 0, 0, 0, 0)
	}
	short := build(vtable(0, 0, 0, 4)) // ids 0-3: the epoch only
	long := build(vtable(0, 0, 0, 4, 0, 0, 0, 0, 0, 4, 4))
	for _, m := range [][]byte{short, long} {
		sameDecode(t, m)
		var r Request
		if err := decodeRequest(m, &r); err != nil || r.Epoch != 42 {
			t.Fatalf("meta %x: epoch %d, err %v; want 42", m, r.Epoch, err)
		}
	}
}

// FuzzDecodeRequestSameAsVerify holds decodeRequest to the verifier and the
// generated accessors on arbitrary input.
func FuzzDecodeRequestSameAsVerify(f *testing.F) {
	for _, s := range requestSeeds() {
		f.Add(s)
	}
	f.Fuzz(sameDecode)
}

// TestDecodeRequestDoesNotAllocate covers good and refused requests: a
// stream of malformed frames costs the node no allocation per frame.
func TestDecodeRequestDoesNotAllocate(t *testing.T) {
	good := requestSeeds()[0]
	bad := append([]byte(nil), good...)
	bad[len(bad)-1] = 0xff // a vector's length or content: refused or not, no allocation
	cut := good[:len(good)/2]
	lim := DefaultLimits()
	var r Request
	if n := testing.AllocsPerRun(100, func() {
		_ = DecodeRequest(good, &lim, &r)
		_ = DecodeRequest(bad, &lim, &r)
		_ = DecodeRequest(cut, &lim, &r)
	}); n != 0 {
		t.Fatalf("%.1f allocations per three decodes", n)
	}
}

// BenchmarkDecodeRequest measures a typical get's request metadata through
// the verifier and accessors (the old way) and through decodeRequest.
func BenchmarkDecodeRequest(b *testing.B) {
	meta := requestSeeds()[0]
	var r Request
	b.Run("verify+accessors", func(b *testing.B) {
		for b.Loop() {
			if err := referenceDecode(meta, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("one-walk", func(b *testing.B) {
		for b.Loop() {
			if err := decodeRequest(meta, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestDecodeRequestCoversSpec: decodeRequest reads each of requestSpec's
// fields (which TestSchema holds to data.fbs) as the kind the spec gives.
// A field added to the schema fails here until the decoder reads it.
func TestDecodeRequestCoversSpec(t *testing.T) {
	want := [reqFields]FieldKind{
		reqJob: String, reqKey: String, reqToken: Bytes, reqEpoch: Scalar8, reqAfter: String,
		reqLimit: Scalar4, reqDelimiter: Scalar1, reqVersion: Scalar8, reqObjectSize: Scalar8,
	}
	if len(requestSpec.Fields) != reqFields {
		t.Fatalf("requestSpec has %d fields, decodeRequest reads %d", len(requestSpec.Fields), reqFields)
	}
	for id, f := range requestSpec.Fields {
		if f.Kind != want[id] {
			t.Errorf("field %d: spec kind %d, decodeRequest reads kind %d", id, f.Kind, want[id])
		}
	}
}

// TestDecodeRequestFieldPastTableEnd places each scalar so that it starts
// inside the table and ends past it: refused, as the verifier refuses it.
func TestDecodeRequestFieldPastTableEnd(t *testing.T) {
	for id, width := range map[int]int{reqEpoch: 8, reqVersion: 8, reqObjectSize: 8, reqLimit: 4, reqDelimiter: 1, reqJob: 4} {
		// vtable (size, table size 16, offsets), then the table: soffset
		// and 12 more bytes; the field at 16-width+1 ends one byte late.
		offs := make([]uint16, id+1)
		offs[id] = uint16(16 - width + 1)
		vt := binary.LittleEndian.AppendUint16(nil, uint16(4+2*len(offs)))
		vt = binary.LittleEndian.AppendUint16(vt, 16)
		for _, o := range offs {
			vt = binary.LittleEndian.AppendUint16(vt, o)
		}
		m := binary.LittleEndian.AppendUint32(nil, uint32(4+len(vt)))
		m = append(m, vt...)
		m = binary.LittleEndian.AppendUint32(m, uint32(len(vt)))
		m = append(m, make([]byte, 12+16)...) // the table's rest, and room past it
		var r Request
		if err := decodeRequest(m, &r); err == nil || err.Error() != errRequestField.Error() {
			t.Errorf("field %d (%d bytes) one byte past the table: err %v, want %v", id, width, err, errRequestField)
		}
		sameDecode(t, m)
	}
}
