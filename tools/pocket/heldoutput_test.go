package main

import (
	"bytes"
	"testing"
)

// TestHeldOutput: what fits the limit reaches the writer only at flush
// (a get that fails before prints nothing); past the limit everything
// held and written passes on, counted.
func TestHeldOutput(t *testing.T) {
	var w bytes.Buffer
	h := &heldOutput{w: &w, limit: 10}
	h.Write([]byte("hello "))
	if w.Len() != 0 || h.passed != 0 {
		t.Fatalf("%q passed before the limit", w.String())
	}
	h.Write([]byte("world"))
	h.Write([]byte("!"))
	if w.String() != "hello world!" || h.passed != 12 {
		t.Fatalf("past the limit: %q, passed %d; want every byte, 12", w.String(), h.passed)
	}
	w.Reset()
	h = &heldOutput{w: &w, limit: 10}
	h.Write([]byte("short"))
	if err := h.Flush(); err != nil || w.String() != "short" || h.passed != 5 {
		t.Fatalf("flush: %q passed %d %v", w.String(), h.passed, err)
	}
}
