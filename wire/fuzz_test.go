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

// FuzzEncodeRequest encodes fuzzer-chosen fields: the result must pass
// Verify, obey the format's layout rules (alignment, forward offsets, zero
// padding) and decode, with DecodeRequest and the generated accessors, to
// exactly the input. Each run first encodes a large request through the
// same encoder, so a reused buffer that is not fully rewritten is caught
// while every failure still reproduces from its input alone.
func FuzzEncodeRequest(f *testing.F) {
	f.Add([]byte("job-1"), []byte("0123456789abcdef"), bytes.Repeat([]byte{7}, 32), []byte(nil), uint64(7), uint32(0), byte(0))
	f.Add([]byte("j"), []byte("abc"), []byte(nil), []byte("abb"), uint64(0), uint32(1000), byte('/'))
	f.Add([]byte(nil), []byte(nil), []byte{0}, []byte(nil), uint64(1<<63), uint32(1<<31), byte(0xFF))
	dirty := Request{Job: bytes.Repeat([]byte{0xAA}, 300), Key: bytes.Repeat([]byte{0xAA}, 1100),
		Token: bytes.Repeat([]byte{0xAA}, 300), After: bytes.Repeat([]byte{0xAA}, 1100), Epoch: ^uint64(0), Limit: ^uint32(0), Delimiter: 0xAA,
		Version: ^uint64(0), ObjectSize: 1<<63 - 1}
	f.Fuzz(func(t *testing.T, job, key, token, after []byte, epoch uint64, limit uint32, delim byte) {
		e := NewEncoder()
		e.Request(&dirty)
		// The version and object size ride on the epoch's bits, so the
		// corpus keeps its shape while all three 8-byte fields vary.
		in := Request{Job: job, Key: key, Token: token, After: after, Epoch: epoch, Limit: limit, Delimiter: delim,
			Version: epoch >> 1, ObjectSize: int64(epoch>>2) * int64(limit&1)}
		checkRequest(t, e.Request(&in), &in)
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

// FuzzChunkKey checks that ParseChunkKey accepts exactly what
// AppendChunkKey makes and returns its parts, and never panics on other
// input; and that DecodeManifest accepts only what AppendManifest makes.
func FuzzChunkKey(f *testing.F) {
	f.Add([]byte("a/b"), uint64(1), 1, []byte("a\x000000000000000001\x001"))
	f.Add([]byte("k"), uint64(1<<63), 70000, []byte("k\x00ffffffffffffffff\x00-1"))
	f.Fuzz(func(t *testing.T, key []byte, v uint64, i int, raw []byte) {
		if k, rv, ri, ok := ParseChunkKey(raw); ok {
			if !bytes.Equal(AppendChunkKey(nil, k, rv, ri), raw) {
				t.Fatalf("ParseChunkKey(%q) = %q %x %d, which is not its encoding", raw, k, rv, ri)
			}
		}
		if m, err := DecodeManifest(raw); err == nil {
			if !bytes.Equal(AppendManifest(nil, m), raw) {
				t.Fatalf("DecodeManifest(%x) = %+v, not its encoding", raw, m)
			}
		}
		if v == 0 || i < 1 || bytes.IndexByte(key, 0) >= 0 {
			return
		}
		k, rv, ri, ok := ParseChunkKey(AppendChunkKey(nil, key, v, i))
		if !ok || !bytes.Equal(k, key) || rv != v || ri != i {
			t.Fatalf("round trip of (%q, %x, %d) gave (%q, %x, %d, %v)", key, v, i, k, rv, ri, ok)
		}
	})
}

// FuzzUnpackVersions feeds arbitrary bytes to the decoder of a version
// order's packed versions (Request.after of OpVersions and
// OpDropVersions): it must refuse what PackVersions cannot have made (a
// length not a multiple of 8, a version 0) and give back, packed again,
// exactly the input it takes.
func FuzzUnpackVersions(f *testing.F) {
	f.Add(PackVersions(nil, 1, 0xffff_ffff_ffff_ffff))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		vs, ok := UnpackVersions(b)
		if !ok {
			if len(b)%8 == 0 && !bytes.Contains(packedZeros(b), []byte{1}) {
				t.Fatalf("refused %x: whole versions, none 0", b)
			}
			return
		}
		if !bytes.Equal(PackVersions(nil, vs...), b) {
			t.Fatalf("%x unpacked to %x, which packs differently", b, vs)
		}
	})
}

// packedZeros marks with 1 each 8-byte word of b that is all zero.
func packedZeros(b []byte) []byte {
	out := make([]byte, 0, len(b)/8)
	for ; len(b) >= 8; b = b[8:] {
		if bytes.Equal(b[:8], make([]byte, 8)) {
			out = append(out, 1)
		} else {
			out = append(out, 0)
		}
	}
	return out
}
