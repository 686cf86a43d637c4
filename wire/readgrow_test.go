package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
)

// TestReadControlFrameGrowsAsBytesArrive: a header that claims the control
// limit (4 MiB) followed by 1,000 bytes and the end of the stream makes the
// reader allocate about ReadGrowStep, not the claimed length. The old
// reader allocated the claimed 4 MiB before reading a byte of it (a
// controller held 4 MiB for each of up to MaxConns connections that sent
// one header).
func TestReadControlFrameGrowsAsBytesArrive(t *testing.T) {
	lim := ControlLimits()
	h := Header{Op: OpStatus, ID: 1, MetaLen: uint32(lim.MaxMeta)}
	in := append(AppendHeader(nil, &h), make([]byte, 1000)...)
	r := bufio.NewReader(bytes.NewReader(in))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, _, err := ReadControlFrame(r, &lim, nil)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a frame cut short: err %v, want %v", err, io.ErrUnexpectedEOF)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 4*ReadGrowStep {
		t.Fatalf("reading a header that claims %d bytes and 1,000 of them allocated %d bytes, want at most %d", lim.MaxMeta, got, 4*ReadGrowStep)
	}
}

// TestReadControlFrameLargeFrameWhole: a frame larger than ReadGrowStep,
// read through the growing path, arrives whole and in order, and its
// buffer is not kept for the next frame; a small one's is.
func TestReadControlFrameLargeFrameWhole(t *testing.T) {
	lim := ControlLimits()
	meta := make([]byte, 3<<20+17)
	for i := range meta {
		meta[i] = byte(i * 7)
	}
	in := AppendControlFrame(nil, OpStatus, 9, CodeOK, meta)
	in = AppendControlFrame(in, OpStatus, 10, CodeOK, []byte("small"))
	r := bufio.NewReader(bytes.NewReader(in))
	h, got, err := ReadControlFrame(r, &lim, make([]byte, 0, 100))
	if err != nil || h.ID != 9 || !bytes.Equal(got, meta) {
		t.Fatalf("large frame: id %d, %d bytes, err %v; want id 9, %d bytes equal", h.ID, len(got), err, len(meta))
	}
	if b := ReuseControlBuffer(got); b != nil {
		t.Fatalf("a %d-byte buffer is kept for the next frame (cap %d), want released", cap(got), cap(b))
	}
	h, got, err = ReadControlFrame(r, &lim, nil)
	if err != nil || h.ID != 10 || string(got) != "small" {
		t.Fatalf("next frame: id %d %q %v", h.ID, got, err)
	}
	if b := ReuseControlBuffer(got); b == nil || len(b) != 0 {
		t.Fatalf("a small frame's buffer is not reused: %v", b)
	}
	if _, _, err := ReadControlFrame(r, &lim, nil); err != io.EOF {
		t.Fatalf("end of stream: %v, want io.EOF", err)
	}
}

// TestReadControlFrameCutAtAStep: a frame cut exactly where the buffer
// grows (after ReadGrowStep bytes) is io.ErrUnexpectedEOF, as a cut
// anywhere inside a frame is, not io.EOF.
func TestReadControlFrameCutAtAStep(t *testing.T) {
	lim := ControlLimits()
	h := Header{Op: OpStatus, ID: 1, MetaLen: uint32(4 * ReadGrowStep)}
	for _, sent := range []int{ReadGrowStep, 2 * ReadGrowStep} {
		in := append(AppendHeader(nil, &h), make([]byte, sent)...)
		_, meta, err := ReadControlFrame(bufio.NewReader(bytes.NewReader(in)), &lim, nil)
		if err != io.ErrUnexpectedEOF || meta != nil {
			t.Errorf("cut after %d of %d bytes: meta %d bytes, err %v; want none, %v", sent, h.MetaLen, len(meta), err, io.ErrUnexpectedEOF)
		}
	}
}
