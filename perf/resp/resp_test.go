package resp

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestWriterFormatsCommands(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out, 64)
	w.WriteGet([]byte("k1"))
	w.WriteSet([]byte("key"), []byte("va\r\nlue"))
	w.WriteCommand([]byte("FLUSHALL"))
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "*2\r\n$3\r\nGET\r\n$2\r\nk1\r\n" +
		"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$7\r\nva\r\nlue\r\n" +
		"*1\r\n$8\r\nFLUSHALL\r\n"
	if out.String() != want {
		t.Fatalf("wrote %q\nwant  %q", out.String(), want)
	}
}

func TestReadCommandRoundTrip(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out, 16)
	big := bytes.Repeat([]byte{'x'}, 5000)
	w.WriteSet([]byte("big"), big)
	w.WriteGet([]byte("big"))
	w.Flush()
	r := NewReader(&out, 64, 1<<20)
	args, err := r.ReadCommand(nil)
	if err != nil || len(args) != 3 || string(args[0]) != "SET" || string(args[1]) != "big" || !bytes.Equal(args[2], big) {
		t.Fatalf("ReadCommand = %d args, %v", len(args), err)
	}
	args, err = r.ReadCommand(args)
	if err != nil || len(args) != 2 || string(args[0]) != "GET" || string(args[1]) != "big" {
		t.Fatalf("ReadCommand = %q, %v", args, err)
	}
	if _, err := r.ReadCommand(args); err != io.EOF {
		t.Fatalf("at end: %v, want io.EOF", err)
	}
}

func TestReaderDecodesEveryKind(t *testing.T) {
	in := "+OK\r\n-ERR wrong type\r\n:-42\r\n$5\r\nhello\r\n$0\r\n\r\n$-1\r\n_\r\n$3\r\na\r\n\r\n"
	want := []Reply{
		{Kind: SimpleString, Data: []byte("OK")},
		{Kind: Error, Data: []byte("ERR wrong type")},
		{Kind: Integer, Int: -42},
		{Kind: Bulk, Data: []byte("hello")},
		{Kind: Bulk, Data: []byte{}},
		{Kind: Null},
		{Kind: Null},
		{Kind: Bulk, Data: []byte("a\r\n")},
	}
	for name, src := range map[string]io.Reader{
		"whole":    strings.NewReader(in),
		"bytewise": iotest.OneByteReader(strings.NewReader(in)),
	} {
		r := NewReader(src, 64, 1024)
		for i, w := range want {
			got, err := r.Next()
			if err != nil {
				t.Fatalf("%s: reply %d: %v", name, i, err)
			}
			if got.Kind != w.Kind || got.Int != w.Int || !bytes.Equal(got.Data, w.Data) {
				t.Fatalf("%s: reply %d = %v %d %q, want %v %d %q", name, i, got.Kind, got.Int, got.Data, w.Kind, w.Int, w.Data)
			}
		}
		if _, err := r.Next(); err != io.EOF {
			t.Fatalf("%s: after the last reply: %v, want io.EOF", name, err)
		}
	}
}

func TestReaderRejectsBadInput(t *testing.T) {
	cases := map[string]error{
		"*1\r\n$1\r\na\r\n":                     ErrProtocol, // arrays are not replies we accept
		"?x\r\n":                                ErrProtocol,
		"+OK\n":                                 ErrProtocol, // bare LF
		"\r\n":                                  ErrProtocol,
		":12a\r\n":                              ErrProtocol,
		":\r\n":                                 ErrProtocol,
		":9999999999999999999\r\n":              ErrProtocol,
		"$-2\r\n":                               ErrProtocol,
		"$2000\r\n":                             ErrTooLarge,
		"$3\r\nabcde":                           ErrProtocol, // no CRLF after the bytes
		"$10\r\nabc":                            io.ErrUnexpectedEOF,
		"+OK":                                   io.ErrUnexpectedEOF,
		"_x\r\n":                                ErrProtocol,
		"+" + strings.Repeat("a", 100) + "\r\n": ErrProtocol, // longer than the buffer
	}
	for in, want := range cases {
		r := NewReader(strings.NewReader(in), 16, 1024)
		if _, err := r.Next(); !errors.Is(err, want) {
			t.Errorf("Next(%q) = %v, want %v", in, err, want)
		}
	}
}

func TestReadCommandRejectsBadInput(t *testing.T) {
	cases := map[string]error{
		"+OK\r\n":            ErrProtocol,
		"*0\r\n":             ErrProtocol,
		"*100\r\n":           ErrProtocol,
		"*1\r\n:1\r\n":       ErrProtocol,
		"*1\r\n$5000\r\n":    ErrTooLarge,
		"*2\r\n$600\r\n":     io.ErrUnexpectedEOF,
		"*2\r\n$1\r\na\r\n":  io.ErrUnexpectedEOF,
		"*1\r\n$1\r\nab\r\n": ErrProtocol,
		"*2\r\n$600\r\n" + strings.Repeat("a", 600) + "\r\n$600\r\n": ErrTooLarge, // total over the limit
	}
	for in, want := range cases {
		r := NewReader(strings.NewReader(in), 16, 1024)
		if _, err := r.ReadCommand(nil); !errors.Is(err, want) {
			t.Errorf("ReadCommand(%q) = %v, want %v", in, err, want)
		}
	}
}

// loopReader replays the same bytes forever, for steady-state tests.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.off:])
	l.off = (l.off + n) % len(l.data)
	return n, nil
}

func TestNextDoesNotAllocate(t *testing.T) {
	var stream []byte
	stream = AppendReply(stream, Reply{Kind: SimpleString, Data: []byte("OK")})
	stream = AppendReply(stream, Reply{Kind: Bulk, Data: bytes.Repeat([]byte("v"), 1024)})
	r := NewReader(&loopReader{data: stream}, 4096, 1<<20)
	r.Next() // grow the bulk buffer once
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Next allocates %.1f times per reply", allocs)
	}
}

func TestWriterDoesNotAllocate(t *testing.T) {
	w := NewWriter(io.Discard, 4096)
	key, val := []byte("bench-00000001"), make([]byte, 1024)
	allocs := testing.AllocsPerRun(1000, func() {
		w.WriteGet(key)
		w.WriteSet(key, val)
		w.Flush()
	})
	if allocs != 0 {
		t.Fatalf("Writer allocates %.1f times per command pair", allocs)
	}
}

func BenchmarkNextBulk1KiB(b *testing.B) {
	stream := AppendReply(nil, Reply{Kind: Bulk, Data: make([]byte, 1024)})
	r := NewReader(&loopReader{data: stream}, 64<<10, 1<<20)
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Next(); err != nil {
			b.Fatal(err)
		}
	}
}

func TestNextInto(t *testing.T) {
	for _, c := range []struct {
		in   string
		kind Kind
		data string
		n    int64
	}{
		{"+OK\r\n", SimpleString, "OK", 0},
		{"-ERR x\r\n", Error, "ERR x", 0},
		{":42\r\n", Integer, "", 42},
		{"$3\r\nabc\r\n", Bulk, "abc", 0},
		{"$0\r\n\r\n", Bulk, "", 0},
		{"$-1\r\n", Null, "", 0},
		{"_\r\n", Null, "", 0},
	} {
		dst := make([]byte, 0, 8)
		r, err := NewReader(strings.NewReader(c.in), 64, 16).NextInto(dst)
		if err != nil || r.Kind != c.kind || string(r.Data) != c.data || r.Int != c.n {
			t.Errorf("%q: %+v %v", c.in, r, err)
		}
		if c.kind == Bulk && len(r.Data) > 0 && &r.Data[0] != &dst[:1][0] {
			t.Errorf("%q: value not read into dst", c.in)
		}
	}
	// A value larger than dst lands in a new slice that later reads keep.
	rd := NewReader(strings.NewReader("$5\r\nhello\r\n$5\r\nworld\r\n"), 64, 16)
	first, err := rd.NextInto(make([]byte, 0, 2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rd.NextInto(nil); err != nil || string(first.Data) != "hello" {
		t.Fatalf("first value after a second read: %q, %v", first.Data, err)
	}
	for _, in := range []string{"", "$5\r\nab", "$17\r\n", "$-2\r\n", "*1\r\n", "$3\r\nabcXY", ":x\r\n", "+OK\n"} {
		if _, err := NewReader(strings.NewReader(in), 64, 16).NextInto(nil); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}
