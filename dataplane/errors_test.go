package dataplane

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestTierErrorsAreWireErrors: each tier error is the wire error of its
// code (tier.go), so errors.Is matches it against the wire sentinel, a
// reply of that code and a wrapped copy, and against no other code.
func TestTierErrorsAreWireErrors(t *testing.T) {
	pairs := map[error]*wire.Error{
		ErrNotFound: wire.ErrNotFound, ErrNoSpace: wire.ErrNoSpace, ErrTooLarge: wire.ErrTooLarge,
		ErrClosed: wire.ErrClosed, ErrIO: wire.ErrIO, ErrBadKey: wire.ErrBadKey,
		ErrExists: wire.ErrExists, ErrConflict: wire.ErrConflict,
	}
	for tierErr, we := range pairs {
		reply := &wire.Error{Code: we.Code, Msg: "from another node"}
		wrapped := fmt.Errorf("some tier: detail: %w", tierErr)
		if !errors.Is(tierErr, we) || !errors.Is(we, tierErr) || !errors.Is(reply, tierErr) || !errors.Is(wrapped, we) {
			t.Errorf("%v does not match %v, its replies and its wrapped copies under errors.Is", tierErr, we)
		}
		if wire.CodeOf(wrapped) != we.Code {
			t.Errorf("wire.CodeOf(%v) = %v, want %v", wrapped, wire.CodeOf(wrapped), we.Code)
		}
		for other, owe := range pairs {
			if owe != we && errors.Is(tierErr, other) {
				t.Errorf("errors.Is(%v, %v) is true", tierErr, other)
			}
		}
	}
}

// TestNodeReplyKeepsDetail: a tier error wrapped with detail reaches the
// client with its code and the detail, naming the code once; an unwrapped
// one with its own message.
func TestNodeReplyKeepsDetail(t *testing.T) {
	n := startNode(t, 8<<20, nil)
	c := dial(t, n, "job-1")
	size := 9 << 20
	r := roundTrip(t, c, wire.OpPut, 0, &wire.Request{Job: []byte("job-1"), Key: []byte("big")}, bytes.Repeat([]byte("x"), size))
	var we *wire.Error
	if !errors.As(r.Err(), &we) || !errors.Is(we, ErrTooLarge) {
		t.Fatalf("put of %d bytes into 8 MiB: %v, want %v", size, r.Err(), ErrTooLarge)
	}
	wantDetail := fmt.Sprintf("dram tier: %d-byte value, capacity ", size)
	if !strings.HasPrefix(we.Msg, wantDetail) || !strings.HasSuffix(we.Msg, ": value too large for this tier") || strings.Contains(we.Msg, "wire:") {
		t.Errorf("reply detail %q, want %q..., ending in the tier error's message, and the code named once", we.Msg, wantDetail)
	}
	r = roundTrip(t, c, wire.OpGet, 0, &wire.Request{Job: []byte("job-1"), Key: []byte("missing")}, nil)
	if !errors.As(r.Err(), &we) || we.Code != wire.CodeNotFound || we.Msg != "key not found" {
		t.Errorf("get of a missing key: %v, want %v", r.Err(), ErrNotFound)
	}
}
