package wire

import (
	"errors"

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
}

// Table layouts for the verifier, in field-id order as in data.fbs.
var (
	requestSpec = TableSpec{Name: "Request", Fields: []Field{
		{Kind: String}, {Kind: String}, {Kind: Bytes}, {Kind: Scalar8},
		{Kind: String}, {Kind: Scalar4}, {Kind: Scalar1},
	}}
	entrySpec = TableSpec{Name: "Entry", Fields: []Field{
		{Kind: String}, {Kind: Scalar8}, {Kind: Scalar1},
	}}
	responseSpec = TableSpec{Name: "Response", Fields: []Field{
		{Kind: String}, {Kind: Scalar8}, {Kind: Scalar8}, {Kind: Scalar4},
		{Kind: TableVec, Sub: &entrySpec}, {Kind: Scalar1}, {Kind: Scalar8}, {Kind: Scalar8},
	}}
)

// DecodeRequest verifies meta and fills r, checking each length against lim.
// Empty meta decodes to an empty request. It does not allocate.
func DecodeRequest(meta []byte, lim *Limits, r *Request) error {
	*r = Request{}
	if len(meta) == 0 {
		return nil
	}
	if err := Verify(meta, &requestSpec); err != nil {
		return err
	}
	var t fb.Request
	t.Init(meta, flatbuffers.GetUOffsetT(meta))
	r.Job, r.Key, r.Token, r.After = t.Job(), t.Key(), t.TokenBytes(), t.After()
	r.Epoch, r.Limit, r.Delimiter = t.Epoch(), t.Limit(), t.Delimiter()
	switch {
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

// Encoder builds metadata flatbuffers. It reuses one builder, so it makes
// no allocations once warm; the bytes it returns are valid until its next
// call. An Encoder is not safe for concurrent use: keep one per connection.
type Encoder struct {
	b *flatbuffers.Builder
}

// NewEncoder returns an encoder with room for typical messages.
func NewEncoder() *Encoder { return &Encoder{b: flatbuffers.NewBuilder(512)} }

// bytesOrZero writes b as a string when it is non-empty.
func (e *Encoder) str(b []byte) flatbuffers.UOffsetT {
	if len(b) == 0 {
		return 0
	}
	return e.b.CreateByteString(b)
}

// Request encodes r.
func (e *Encoder) Request(r *Request) []byte {
	b := e.b
	b.Reset()
	job, key, after := e.str(r.Job), e.str(r.Key), e.str(r.After)
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
	fb.RequestAddLimit(b, r.Limit)
	fb.RequestAddDelimiter(b, r.Delimiter)
	b.Finish(fb.RequestEnd(b))
	return b.FinishedBytes()
}

// Response encodes r.
func (e *Encoder) Response(r *Response) []byte {
	b := e.b
	b.Reset()
	var ents flatbuffers.UOffsetT
	if len(r.Entries) > 0 {
		ents = e.entries(r.Entries)
	}
	var msg flatbuffers.UOffsetT
	if r.Message != "" {
		msg = b.CreateString(r.Message)
	}
	fb.ResponseStart(b)
	if msg != 0 {
		fb.ResponseAddMessage(b, msg)
	}
	if ents != 0 {
		fb.ResponseAddEntries(b, ents)
	}
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

// ErrorResponse builds the metadata of an error reply for err.
func (e *Encoder) ErrorResponse(err error) []byte {
	r := Response{Message: err.Error()}
	var we *Error
	if errors.As(err, &we) {
		r.Message, r.Epoch = we.Msg, we.Epoch
	}
	return e.Response(&r)
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
