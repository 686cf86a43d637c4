package wire

import (
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"
)

func TestHeaderRoundTrip(t *testing.T) {
	lim := DefaultLimits()
	h := Header{Op: OpPut, Flags: FlagPersist, Code: CodeNoSpace, ID: 1<<63 + 5, MetaLen: 100, PayloadLen: 1 << 20}
	b := AppendHeader(nil, &h)
	if len(b) != HeaderLen {
		t.Fatalf("header is %d bytes, want %d", len(b), HeaderLen)
	}
	got, err := ParseHeader(b, &lim)
	if err != nil || got != h {
		t.Fatalf("ParseHeader = %+v, %v; want %+v", got, err, h)
	}
	if got.FrameLen() != HeaderLen+100+1<<20 {
		t.Fatalf("FrameLen = %d", got.FrameLen())
	}
}

func TestHeaderRejects(t *testing.T) {
	lim := DefaultLimits()
	good := AppendHeader(nil, &Header{Op: OpGet, ID: 1})
	cases := []struct {
		name string
		mut  func(b []byte)
		code Code
	}{
		{"magic", func(b []byte) { b[0] = 'X' }, CodeMalformed},
		{"version", func(b []byte) { b[2] = 9 }, CodeVersion},
		{"meta too large", func(b []byte) { b[16], b[17], b[18] = 0, 0, 0x10 }, CodeTooLarge},
		{"payload too large", func(b []byte) { b[23] = 0xFF }, CodeTooLarge},
	}
	for _, c := range cases {
		b := append([]byte(nil), good...)
		c.mut(b)
		_, err := ParseHeader(b, &lim)
		if CodeOf(err) != c.code {
			t.Errorf("%s: err %v, want code %v", c.name, err, c.code)
		}
	}
	if _, err := ParseHeader(good[:HeaderLen-1], &lim); !errors.Is(err, ErrShortHeader) {
		t.Errorf("short header: %v", err)
	}
}

func TestRequestRoundTrip(t *testing.T) {
	lim := DefaultLimits()
	e := NewEncoder()
	in := Request{Job: []byte("sort-1"), Key: []byte("a/b"), Token: []byte{1, 2, 3}, After: []byte("a/a"), Epoch: 7, Limit: 10, Delimiter: '/'}
	meta := e.Request(&in)
	var out Request
	if err := DecodeRequest(meta, &lim, &out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Job, in.Job) || !bytes.Equal(out.Key, in.Key) || !bytes.Equal(out.Token, in.Token) ||
		!bytes.Equal(out.After, in.After) || out.Epoch != 7 || out.Limit != 10 || out.Delimiter != '/' {
		t.Fatalf("round trip: %+v", out)
	}
	// Empty metadata is an empty request.
	if err := DecodeRequest(nil, &lim, &out); err != nil || out.Job != nil {
		t.Fatalf("empty meta: %+v %v", out, err)
	}
}

func TestRequestLimits(t *testing.T) {
	lim := DefaultLimits()
	e := NewEncoder()
	var r Request
	long := bytes.Repeat([]byte("k"), lim.MaxKeyLen+1)
	if err := DecodeRequest(e.Request(&Request{Job: []byte("j"), Key: long}), &lim, &r); !errors.Is(err, ErrBadKey) {
		t.Errorf("long key: %v", err)
	}
	if err := DecodeRequest(e.Request(&Request{Job: long[:lim.MaxJobLen+1]}), &lim, &r); !errors.Is(err, ErrBadKey) {
		t.Errorf("long job: %v", err)
	}
	if err := DecodeRequest(e.Request(&Request{Token: long[:lim.MaxToken+1]}), &lim, &r); !errors.Is(err, ErrBadToken) {
		t.Errorf("long token: %v", err)
	}
}

func TestResponseRoundTrip(t *testing.T) {
	e := NewEncoder()
	in := Response{Message: "m", Epoch: 3, Size: 99, Flags: 1, More: true, Count: 2, Capacity: 1 << 40,
		Entries:     []Entry{{Key: []byte("a"), Size: 1}, {Key: []byte("b/"), Dir: true}},
		Incarnation: 1<<63 + 5, Proof: []byte{7, 8, 9}}
	var out Response
	if err := DecodeResponse(e.Response(&in), &out); err != nil {
		t.Fatal(err)
	}
	if out.Message != "m" || out.Epoch != 3 || out.Size != 99 || out.Flags != 1 || !out.More || out.Count != 2 ||
		out.Capacity != 1<<40 || len(out.Entries) != 2 || string(out.Entries[1].Key) != "b/" || !out.Entries[1].Dir ||
		out.Incarnation != 1<<63+5 || !bytes.Equal(out.Proof, []byte{7, 8, 9}) {
		t.Fatalf("round trip: %+v", out)
	}
}

func TestReplyError(t *testing.T) {
	e := NewEncoder()
	meta := e.ErrorResponse(&Error{Code: CodeStaleEpoch, Msg: "refresh", Epoch: 42})
	h := Header{Op: OpGet.Reply(), Code: CodeStaleEpoch, MetaLen: uint32(len(meta))}
	err := ReplyError(&h, meta)
	var we *Error
	if !errors.As(err, &we) || we.Epoch != 42 || we.Msg != "refresh" || !errors.Is(err, ErrStaleEpoch) || errors.Is(err, ErrNotFound) {
		t.Fatalf("ReplyError = %v", err)
	}
	if ReplyError(&Header{Code: CodeOK}, nil) != nil {
		t.Fatal("ok reply gave an error")
	}
}

// TestErrorResponseKeepsDetail: a wrapped error's reply carries the
// wrapping detail (the controller's replies dropped it before ErrorOf).
func TestErrorResponseKeepsDetail(t *testing.T) {
	e := NewEncoder()
	meta := e.ErrorResponse(fmt.Errorf("job sort-7: %w", ErrUnknownJob))
	h := Header{Op: OpGet.Reply(), Code: CodeUnknownJob, MetaLen: uint32(len(meta))}
	var we *Error
	if err := ReplyError(&h, meta); !errors.As(err, &we) || !strings.Contains(we.Msg, "job sort-7") || !errors.Is(err, ErrUnknownJob) {
		t.Fatalf("ReplyError = %v", err)
	}
}

func TestVerifyRejectsCorruption(t *testing.T) {
	lim := DefaultLimits()
	e := NewEncoder()
	meta := append([]byte(nil), e.Request(&Request{Job: []byte("job"), Key: []byte("key"), Token: []byte("tok")})...)
	// Every truncation must fail cleanly, never panic.
	for n := 0; n < len(meta); n++ {
		var r Request
		if err := DecodeRequest(meta[:n], &lim, &r); err == nil && n > 0 {
			t.Errorf("truncated to %d bytes: decoded %+v", n, r)
		}
	}
	// Root offset pointing past the end.
	bad := append([]byte(nil), meta...)
	bad[0], bad[1], bad[2], bad[3] = 0xFF, 0xFF, 0xFF, 0x7F
	var r Request
	if err := DecodeRequest(bad, &lim, &r); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad root: %v", err)
	}
}

func TestEncoderNoAllocs(t *testing.T) {
	e := NewEncoder()
	lim := DefaultLimits()
	req := Request{Job: []byte("job-1"), Key: []byte("some/key"), Token: make([]byte, 32), Epoch: 1}
	var out Request
	e.Request(&req)
	allocs := testing.AllocsPerRun(100, func() {
		m := e.Request(&req)
		if err := DecodeRequest(m, &lim, &out); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("encode+decode allocates %.1f times per request", allocs)
	}
}

// TestCodeNames: every Code constant declared in codes.go has a name
// (CodeNotLeader was once added past the end of the name table and printed
// as "code 24").
func TestCodeNames(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "codes.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, sp := range g.Specs {
			vs := sp.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Code" || len(vs.Values) != 1 {
				continue
			}
			lit, ok := vs.Values[0].(*ast.BasicLit)
			if !ok {
				continue
			}
			v, _ := strconv.Atoi(lit.Value)
			n++
			if c := Code(v); strings.HasPrefix(c.String(), "code ") {
				t.Errorf("%s (%d) has no name: %q", vs.Names[0].Name, v, c.String())
			}
		}
	}
	if n < 25 {
		t.Fatalf("found %d Code constants in codes.go, want every one of them", n)
	}
	if OpGet.Reply().String() != "get-reply" || !OpGet.Reply().IsReply() || OpGet.IsReply() {
		t.Error("op names")
	}
}

func BenchmarkRequestEncodeDecode(b *testing.B) {
	e := NewEncoder()
	lim := DefaultLimits()
	req := Request{Job: []byte("job-1"), Key: []byte("some/key/000001"), Token: make([]byte, 32), Epoch: 1}
	var out Request
	b.ReportAllocs()
	for b.Loop() {
		if err := DecodeRequest(e.Request(&req), &lim, &out); err != nil {
			b.Fatal(err)
		}
	}
}

// TestVerifySharedTablesBounded builds a buffer whose outer vector points
// n times at one table that holds a vector pointing m times at one leaf:
// n*m visits from a few kilobytes. The verifier's budget must refuse it.
func TestVerifySharedTablesBounded(t *testing.T) {
	leaf := &TableSpec{Name: "Leaf"}
	mid := &TableSpec{Name: "Mid", Fields: []Field{{Kind: TableVec, Sub: leaf}}}
	outer := &TableSpec{Name: "Outer", Fields: []Field{{Kind: TableVec, Sub: mid}}}
	const n, m = 1000, 1000
	var buf []byte
	le := func(v int) { buf = append(buf, byte(v), byte(v>>8), byte(v>>16), byte(v>>24)) }
	put := func(at, v int) {
		buf[at], buf[at+1], buf[at+2], buf[at+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
	// table emits a vtable with one offset field at +4, then the table, and
	// returns the table's position and its field's position.
	table := func() (int, int) {
		vt := len(buf)
		buf = append(buf, 6, 0, 8, 0, 4, 0)
		tab := len(buf)
		le(tab - vt)
		f := len(buf)
		le(0)
		return tab, f
	}
	// vector emits a vector of k offsets, all to target (patched later).
	vector := func(k int) (int, int) {
		at := len(buf)
		le(k)
		first := len(buf)
		buf = append(buf, make([]byte, 4*k)...)
		return at, first
	}
	le(0) // root offset
	outTab, outField := table()
	outVec, outElems := vector(n)
	midTab, midField := table()
	midVec, midElems := vector(m)
	leafVT := len(buf)
	buf = append(buf, 4, 0, 4, 0)
	leafTab := len(buf)
	le(leafTab - leafVT)
	put(0, outTab)
	put(outField, outVec-outField)
	put(midField, midVec-midField)
	for i := 0; i < n; i++ {
		put(outElems+4*i, midTab-(outElems+4*i))
	}
	for i := 0; i < m; i++ {
		put(midElems+4*i, leafTab-(midElems+4*i))
	}
	if err := Verify(buf, outer); !errors.Is(err, ErrMalformed) {
		t.Fatalf("shared-table buffer of %d bytes: %v, want a malformed error", len(buf), err)
	}
	// The same shape with one outer element is honest and verifies.
	put(outVec, 1)
	if err := Verify(buf, outer); err != nil {
		t.Fatalf("single reference: %v", err)
	}
}
