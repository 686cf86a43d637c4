package wire

import (
	"encoding/binary"
	"math"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/pocketstore/pocket/wire/fb"
)

// Request is a decoded data-plane request's metadata. Its slices point into
// the frame buffer it was decoded from and are valid only as long as that
// buffer is (for a node: until OnData returns).
type Request struct {
	Job, Key, Token, After []byte
	Epoch                  uint64
	Limit                  uint32
	Delimiter              byte
	Version                uint64 // object version (see data.fbs)
	ObjectSize             int64  // a manifest put's object size in bytes
}

// Entry is one list result.
type Entry struct {
	Key  []byte
	Size int64
	Dir  bool
}

// Response is a reply's metadata. Decoded responses own their memory.
type Response struct {
	Message  string
	Epoch    uint64
	Size     int64
	Flags    uint32
	Entries  []Entry
	More     bool
	Count    uint64
	Capacity int64
	Version  uint64   // the manifest version a put replaced or a delete removed
	Versions []uint64 // a prefix delete's removed manifest versions
	// Incarnation and Proof answer OpIncarnation: the node's incarnation
	// and its proof (token.IncarnationProof, token.Len bytes; empty from a
	// node without the cluster secret).
	Incarnation uint64
	Proof       []byte
}

// Table layouts for the verifier, in field-id order as in data.fbs.
var (
	requestSpec = TableSpec{Name: "Request", Fields: []Field{
		{Kind: String}, {Kind: String}, {Kind: Bytes}, {Kind: Scalar8},
		{Kind: String}, {Kind: Scalar4}, {Kind: Scalar1}, {Kind: Scalar8}, {Kind: Scalar8},
	}}
	entrySpec = TableSpec{Name: "Entry", Fields: []Field{
		{Kind: String}, {Kind: Scalar8}, {Kind: Scalar1},
	}}
	responseSpec = TableSpec{Name: "Response", Fields: []Field{
		{Kind: String}, {Kind: Scalar8}, {Kind: Scalar8}, {Kind: Scalar4},
		{Kind: TableVec, Sub: &entrySpec}, {Kind: Scalar1}, {Kind: Scalar8}, {Kind: Scalar8},
		{Kind: Scalar8}, {Kind: Bytes}, {Kind: Scalar8}, {Kind: Bytes},
	}}
)

// DecodeRequest verifies meta and fills r, checking each length against lim.
// Empty meta decodes to an empty request. It does not allocate.
func DecodeRequest(meta []byte, lim *Limits, r *Request) error {
	*r = Request{}
	if len(meta) == 0 {
		return nil
	}
	if err := decodeRequest(meta, r); err != nil {
		*r = Request{}
		return err
	}
	switch {
	case r.ObjectSize < 0:
		return errNegativeSize
	case len(r.Job) > lim.MaxJobLen:
		return errJobTooLong
	case len(r.Key) > lim.MaxKeyLen, len(r.After) > lim.MaxKeyLen:
		return errKeyTooLong
	case len(r.Token) > lim.MaxToken:
		return errTokenTooLong
	}
	return nil
}

var (
	errJobTooLong   = &Error{Code: CodeBadKey, Msg: "job id over limit"}
	errKeyTooLong   = &Error{Code: CodeBadKey, Msg: "key over limit"}
	errTokenTooLong = &Error{Code: CodeBadToken, Msg: "token over limit"}
	errNegativeSize = &Error{Code: CodeMalformed, Msg: "negative object size"}
)

// DecodeResponse verifies meta and returns its contents, copied out of meta.
func DecodeResponse(meta []byte, r *Response) error {
	*r = Response{}
	if len(meta) == 0 {
		return nil
	}
	if err := Verify(meta, &responseSpec); err != nil {
		return err
	}
	var t fb.Response
	t.Init(meta, flatbuffers.GetUOffsetT(meta))
	r.Message = string(t.Message())
	r.Epoch, r.Size, r.Flags = t.Epoch(), t.Size(), t.Flags()
	r.More, r.Count, r.Capacity = t.More(), t.Count(), t.Capacity()
	r.Version, r.Incarnation = t.Version(), t.Incarnation()
	if p := t.ProofBytes(); len(p) > 0 {
		r.Proof = append([]byte(nil), p...)
	}
	if vs := t.VersionsBytes(); len(vs) > 0 {
		if len(vs)%8 != 0 {
			return &Error{Code: CodeMalformed, Msg: "versions not a whole number of uint64s"}
		}
		r.Versions = make([]uint64, len(vs)/8)
		for i := range r.Versions {
			r.Versions[i] = binary.LittleEndian.Uint64(vs[8*i:])
		}
	}
	if n := t.EntriesLength(); n > 0 {
		r.Entries = make([]Entry, n)
		var e fb.Entry
		for i := range r.Entries {
			t.Entries(&e, i)
			r.Entries[i] = Entry{Key: append([]byte(nil), e.Key()...), Size: e.Size(), Dir: e.Dir()}
		}
	}
	return nil
}

// Encoder builds metadata flatbuffers. Requests are laid out by hand into
// one reused buffer and responses are built with one reused flatbuffers
// builder, so it makes no allocations once warm. The bytes it returns are
// valid until its next call (of any method). An Encoder is not safe for
// concurrent use: keep one per connection.
type Encoder struct {
	b   *flatbuffers.Builder // responses
	req []byte               // requests: see Request
}

// NewEncoder returns an encoder with room for typical messages.
func NewEncoder() *Encoder {
	return &Encoder{b: flatbuffers.NewBuilder(512), req: make([]byte, 0, 512)}
}

// Field ids of table Request, in data.fbs order. The vtable holds one
// uint16 per id; the order is part of the wire format.
const (
	reqJob = iota
	reqKey
	reqToken
	reqEpoch
	reqAfter
	reqLimit
	reqDelimiter
	reqVersion
	reqObjectSize
	reqFields
)

// align rounds n up to a multiple of a, a power of two.
func align(n, a int) int { return (n + a - 1) &^ (a - 1) }

// Request encodes r as a fb.Request flatbuffer and returns it. The bytes are
// valid until the encoder's next call.
//
// It writes the flatbuffer by hand rather than with a flatbuffers.Builder
// because every data-plane request pays for it on the client: the builder
// writes back to front, re-checks alignment and capacity for every scalar,
// and builds and deduplicates the vtable at run time, which cost about 5% of
// a load generator's CPU per 1 KiB get. This table's shape is fixed, so
// Request computes every position first and then writes it in one pass,
// front to back:
//
//	0      root uoffset: the table's position T
//	4      vtable: uint16 vtable size, uint16 table size, then one uint16
//	       per field id up to the highest present one: the field's offset
//	       from T, 0 when absent
//	T      table: int32 soffset T-4 (the vtable lies T-4 bytes before it),
//	       then the present fields: the 8-byte scalars epoch, version and
//	       object_size (T%8 == 4 when any is present, so each is 8-aligned),
//	       the uoffsets of job, key, token and after, limit, delimiter
//	after  the present ones of job, key, token and after, each at a 4-aligned
//	       position: uint32 length, the bytes and, for strings, a NUL
//
// Every uoffset points forward as the format requires (they are unsigned),
// alignment is relative to the buffer's start, and the padding is zeroed so
// no byte of an earlier request survives into this one. Fields are omitted
// exactly as the builder did: empty strings and token, and scalars equal to
// the schema default 0; a reader sees the same values either way. Requests
// of 2 GiB or more cannot be encoded and panic, as they did in the builder.
func (e *Encoder) Request(r *Request) []byte {
	// The loops below index vec rather than range over its value: a range
	// copies the array each time, a fifth of this function's cost.
	vec := [4][]byte{r.Job, r.Key, r.Token, r.After}
	vecID := [4]int{reqJob, reqKey, reqToken, reqAfter}

	// The table: each present field's offset from its start (0: absent).
	var at [reqFields]int
	last := -1 // highest present field id
	size := 4  // table bytes: the soffset, then the fields
	wide := [3]uint64{r.Epoch, r.Version, uint64(r.ObjectSize)}
	wideID := [3]int{reqEpoch, reqVersion, reqObjectSize}
	for i := range wide {
		if wide[i] != 0 {
			at[wideID[i]], size, last = size, size+8, max(last, wideID[i])
		}
	}
	for i := range vec {
		if len(vec[i]) > 0 {
			at[vecID[i]], size, last = size, size+4, max(last, vecID[i])
		}
	}
	if r.Limit != 0 {
		at[reqLimit], size, last = size, size+4, max(last, reqLimit)
	}
	if r.Delimiter != 0 {
		at[reqDelimiter], size, last = size, size+1, max(last, reqDelimiter)
	}
	vtSize := 4 + 2*(last+1)
	tab := align(4+vtSize, 4)
	if (r.Epoch|r.Version|uint64(r.ObjectSize)) != 0 && tab%8 == 0 {
		tab += 4
	}
	head := tab + size // end of the table

	// The vectors follow the table.
	var pos [4]int
	n := head
	for i := range vec {
		if len(vec[i]) > 0 {
			pos[i] = align(n, 4)
			n = pos[i] + 4 + len(vec[i])
			if vecID[i] != reqToken {
				n++ // a string's NUL
			}
		}
	}
	if n > math.MaxInt32 {
		panic("wire: request metadata of 2 GiB or more")
	}
	if cap(e.req) < n {
		e.req = make([]byte, max(n, 2*cap(e.req)))
	}
	buf := e.req[:n]

	le := binary.LittleEndian
	clear(buf[:head])
	le.PutUint32(buf, uint32(tab))
	le.PutUint16(buf[4:], uint16(vtSize))
	le.PutUint16(buf[6:], uint16(size))
	for id := 0; id <= last; id++ {
		le.PutUint16(buf[8+2*id:], uint16(at[id]))
	}
	le.PutUint32(buf[tab:], uint32(tab-4))
	for i := range wide {
		if wide[i] != 0 {
			le.PutUint64(buf[tab+at[wideID[i]]:], wide[i])
		}
	}
	if r.Limit != 0 {
		le.PutUint32(buf[tab+at[reqLimit]:], r.Limit)
	}
	if r.Delimiter != 0 {
		buf[tab+at[reqDelimiter]] = r.Delimiter
	}
	end := head
	for i := range vec {
		v := vec[i]
		if len(v) == 0 {
			continue
		}
		p, f := pos[i], tab+at[vecID[i]]
		clear(buf[end:p])
		le.PutUint32(buf[f:], uint32(p-f))
		le.PutUint32(buf[p:], uint32(len(v)))
		end = p + 4 + copy(buf[p+4:], v)
		if vecID[i] != reqToken {
			buf[end] = 0
			end++
		}
	}
	return buf[:n:n]
}

// Response encodes r.
func (e *Encoder) Response(r *Response) []byte {
	b := e.b
	b.Reset()
	var ents flatbuffers.UOffsetT
	if len(r.Entries) > 0 {
		ents = e.entries(r.Entries)
	}
	var msg, vers, proof flatbuffers.UOffsetT
	if r.Message != "" {
		msg = b.CreateString(r.Message)
	}
	if len(r.Proof) > 0 {
		proof = b.CreateByteVector(r.Proof)
	}
	if len(r.Versions) > 0 {
		vers = e.versions(r.Versions)
	}
	fb.ResponseStart(b)
	if msg != 0 {
		fb.ResponseAddMessage(b, msg)
	}
	if ents != 0 {
		fb.ResponseAddEntries(b, ents)
	}
	if vers != 0 {
		fb.ResponseAddVersions(b, vers)
	}
	if proof != 0 {
		fb.ResponseAddProof(b, proof)
	}
	fb.ResponseAddIncarnation(b, r.Incarnation)
	fb.ResponseAddVersion(b, r.Version)
	fb.ResponseAddEpoch(b, r.Epoch)
	fb.ResponseAddSize(b, r.Size)
	fb.ResponseAddFlags(b, r.Flags)
	fb.ResponseAddMore(b, r.More)
	fb.ResponseAddCount(b, r.Count)
	fb.ResponseAddCapacity(b, r.Capacity)
	b.Finish(fb.ResponseEnd(b))
	return b.FinishedBytes()
}

func (e *Encoder) entries(ents []Entry) flatbuffers.UOffsetT {
	b := e.b
	offs := make([]flatbuffers.UOffsetT, len(ents))
	for i := range ents {
		k := b.CreateByteString(ents[i].Key)
		fb.EntryStart(b)
		fb.EntryAddKey(b, k)
		fb.EntryAddSize(b, ents[i].Size)
		fb.EntryAddDir(b, ents[i].Dir)
		offs[i] = fb.EntryEnd(b)
	}
	fb.ResponseStartEntriesVector(b, len(ents))
	for i := len(offs) - 1; i >= 0; i-- {
		b.PrependUOffsetT(offs[i])
	}
	return b.EndVector(len(ents))
}

// versions writes vs as a byte vector of little-endian uint64s.
func (e *Encoder) versions(vs []uint64) flatbuffers.UOffsetT {
	raw := make([]byte, 8*len(vs))
	for i, v := range vs {
		binary.LittleEndian.PutUint64(raw[8*i:], v)
	}
	return e.b.CreateByteVector(raw)
}

// ErrorResponse builds the metadata of an error reply for err.
func (e *Encoder) ErrorResponse(err error) []byte {
	we := ErrorOf(err)
	return e.Response(&Response{Message: we.Msg, Epoch: we.Epoch})
}

// ReplyError turns an error reply (h.Code != CodeOK) into an *Error carrying
// the reply's detail and epoch. It returns nil for a successful reply.
func ReplyError(h *Header, meta []byte) error {
	if h.Code == CodeOK {
		return nil
	}
	e := &Error{Code: h.Code}
	var r Response
	if err := DecodeResponse(meta, &r); err != nil {
		return err
	}
	e.Msg, e.Epoch = r.Message, r.Epoch
	return e
}
