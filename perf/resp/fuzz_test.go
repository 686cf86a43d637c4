package resp

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// decodeAll decodes replies until an error and returns their re-encoding
// and the error that stopped it.
func decodeAll(src io.Reader) ([]byte, error) {
	r := NewReader(src, 64, 4096)
	var out []byte
	for {
		rep, err := r.Next()
		if err != nil {
			return out, err
		}
		out = AppendReply(out, rep)
	}
}

// FuzzReader feeds arbitrary bytes to the reply decoder, once whole and once
// one byte per read (partial reads), and checks both see the same replies,
// that it never panics, and that whatever decoded re-encodes to input that
// decodes to the same replies.
func FuzzReader(f *testing.F) {
	for _, s := range []string{
		"+OK\r\n", "-ERR x\r\n", ":12\r\n", "$3\r\nabc\r\n", "$-1\r\n", "_\r\n",
		"$5\r\nab", "*1\r\n", ":-\r\n", "$99999999999\r\n", "+OK\r\n$0\r\n\r\n:1\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		whole, errWhole := decodeAll(bytes.NewReader(data))
		split, errSplit := decodeAll(iotest.OneByteReader(bytes.NewReader(data)))
		if !bytes.Equal(whole, split) {
			t.Fatalf("whole and byte-wise reads disagree:\n%q\n%q", whole, split)
		}
		if errors.Is(errWhole, ErrProtocol) != errors.Is(errSplit, ErrProtocol) {
			t.Fatalf("errors disagree: %v vs %v", errWhole, errSplit)
		}
		again, err := decodeAll(bytes.NewReader(whole))
		if err != io.EOF || !bytes.Equal(again, whole) {
			t.Fatalf("re-encoded replies do not decode to themselves: %v\n%q\n%q", err, whole, again)
		}
	})
}

// FuzzReadCommand does the same for the command (server-side) decoder.
func FuzzReadCommand(f *testing.F) {
	for _, s := range []string{
		"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
		"*1\r\n$-1\r\n", "*65\r\n", "*2\r\n$3\r\nab",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		read := func(src io.Reader) ([][]byte, error) {
			r := NewReader(src, 64, 4096)
			var all [][]byte
			for {
				args, err := r.ReadCommand(nil)
				if err != nil {
					return all, err
				}
				for _, a := range args {
					all = append(all, bytes.Clone(a))
				}
				all = append(all, nil) // command boundary
			}
		}
		a, errA := read(bytes.NewReader(data))
		b, errB := read(iotest.OneByteReader(bytes.NewReader(data)))
		if len(a) != len(b) || errors.Is(errA, ErrProtocol) != errors.Is(errB, ErrProtocol) {
			t.Fatalf("whole and byte-wise reads disagree: %d/%d args, %v / %v", len(a), len(b), errA, errB)
		}
		for i := range a {
			if !bytes.Equal(a[i], b[i]) {
				t.Fatalf("argument %d differs: %q vs %q", i, a[i], b[i])
			}
		}
	})
}

// FuzzNextInto checks that NextInto, with a small destination, decodes the
// same replies as Next.
func FuzzNextInto(f *testing.F) {
	for _, s := range []string{"+OK\r\n", "$3\r\nabc\r\n", ":1\r\n", "$-1\r\n", "-E\r\n", "$9\r\n123456789\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		want, errWant := decodeAll(bytes.NewReader(data))
		r := NewReader(bytes.NewReader(data), 64, 4096)
		var got []byte
		var err error
		for {
			var rep Reply
			if rep, err = r.NextInto(make([]byte, 0, 4)); err != nil {
				break
			}
			got = AppendReply(got, rep)
		}
		if !bytes.Equal(got, want) || (err == nil) != (errWant == nil) {
			t.Fatalf("NextInto decoded %q (%v), Next %q (%v)", got, err, want, errWant)
		}
	})
}
