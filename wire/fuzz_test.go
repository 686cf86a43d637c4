package wire

import (
	"bytes"
	"testing"
)

// FuzzDecodeRequest feeds arbitrary metadata to the request decoder: it must
// return an error or a request whose fields lie inside the input, never panic.
func FuzzDecodeRequest(f *testing.F) {
	e := NewEncoder()
	f.Add(append([]byte(nil), e.Request(&Request{Job: []byte("j-1"), Key: []byte("k"), Token: []byte("t"), Epoch: 2})...))
	f.Add(append([]byte(nil), e.Request(&Request{After: []byte("x"), Limit: 3, Delimiter: '/'})...))
	f.Add([]byte{4, 0, 0, 0, 0, 0, 0, 0})
	lim := DefaultLimits()
	f.Fuzz(func(t *testing.T, meta []byte) {
		var r Request
		if err := DecodeRequest(meta, &lim, &r); err != nil {
			if CodeOf(err) == CodeInternal {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		for _, s := range [][]byte{r.Job, r.Key, r.Token, r.After} {
			if len(s) > len(meta) {
				t.Fatalf("field longer than input")
			}
		}
	})
}

// FuzzDecodeResponse does the same for replies (the client decodes them).
func FuzzDecodeResponse(f *testing.F) {
	e := NewEncoder()
	f.Add(append([]byte(nil), e.Response(&Response{Message: "x", Entries: []Entry{{Key: []byte("a")}}})...))
	f.Add(append([]byte(nil), e.ErrorResponse(ErrNotFound)...))
	f.Fuzz(func(t *testing.T, meta []byte) {
		var r Response
		if err := DecodeResponse(meta, &r); err == nil {
			// A decoded response re-encodes and decodes to the same thing.
			var again Response
			if err := DecodeResponse(NewEncoder().Response(&r), &again); err != nil {
				t.Fatalf("re-decode: %v", err)
			}
			if again.Message != r.Message || len(again.Entries) != len(r.Entries) {
				t.Fatalf("re-decode differs")
			}
		}
	})
}

// FuzzFrame parses a stream of frames the way a node does, with the input
// split in two at every fuzzed point, to exercise partial reads.
func FuzzFrame(f *testing.F) {
	e := NewEncoder()
	meta := e.Request(&Request{Job: []byte("j"), Key: []byte("k")})
	frame := AppendHeader(nil, &Header{Op: OpPut, ID: 1, MetaLen: uint32(len(meta)), PayloadLen: 3})
	frame = append(append(frame, meta...), 'a', 'b', 'c')
	f.Add(frame, uint(10))
	f.Add([]byte("PK\x01\x03"), uint(2))
	lim := DefaultLimits()
	lim.MaxPayload = 1 << 16
	f.Fuzz(func(t *testing.T, stream []byte, split uint) {
		whole := parseFrames(t, stream, &lim)
		cut := int(split % uint(len(stream)+1))
		var buf bytes.Buffer
		buf.Write(stream[:cut])
		n := len(parseFrames(t, buf.Bytes(), &lim))
		if n > len(whole) {
			t.Fatalf("prefix parsed %d frames, whole stream %d", n, len(whole))
		}
	})
}

// parseFrames returns the request ids of the complete, valid frames at the
// start of b, stopping at the first incomplete or invalid one.
func parseFrames(t *testing.T, b []byte, lim *Limits) []uint64 {
	var ids []uint64
	for {
		h, err := ParseHeader(b, lim)
		if err != nil || int64(len(b)) < h.FrameLen() {
			return ids
		}
		var r Request
		if DecodeRequest(b[HeaderLen:HeaderLen+h.MetaLen], lim, &r) != nil {
			return ids
		}
		ids = append(ids, h.ID)
		b = b[h.FrameLen():]
	}
}
