package wire

import (
	"errors"
	"fmt"
	"io"
	"testing"
)

// TestErrorOf: the reply for an error keeps its code and its whole detail,
// names the code once, and a sentinel is answered as itself.
func TestErrorOf(t *testing.T) {
	sentinel := &Error{Code: CodeTooLarge, Msg: "value too large for tier"}
	stale := &Error{Code: CodeStaleEpoch, Msg: "map is stale", Epoch: 7}
	for _, c := range []struct {
		name string
		err  error
		want Error
	}{
		{"sentinel", sentinel, *sentinel},
		{"wrapped", fmt.Errorf("dram tier: 5000-byte value, capacity 4096: %w", sentinel),
			Error{Code: CodeTooLarge, Msg: "dram tier: 5000-byte value, capacity 4096: value too large for tier"}},
		{"wrapped twice, beside another error", fmt.Errorf("put %q: %w", "k", fmt.Errorf("nvme tier write: %w: %w", ErrNoSpace, io.ErrShortWrite)),
			Error{Code: CodeNoSpace, Msg: `put "k": nvme tier write: no space: short write`}},
		{"wrapped with an epoch", fmt.Errorf("job j: %w", stale),
			Error{Code: CodeStaleEpoch, Msg: "job j: map is stale", Epoch: 7}},
		{"not a wire error", errors.New("disk on fire"), Error{Code: CodeInternal, Msg: "disk on fire"}},
	} {
		got := ErrorOf(c.err)
		if *got != c.want {
			t.Errorf("%s: ErrorOf(%q) = %+v, want %+v", c.name, c.err, *got, c.want)
		}
		if !errors.Is(got, &Error{Code: c.want.Code}) {
			t.Errorf("%s: errors.Is(%v, code %v) is false", c.name, got, c.want.Code)
		}
	}
	if got := ErrorOf(sentinel); got != sentinel {
		t.Errorf("ErrorOf(sentinel) = %p, want the sentinel itself %p", got, sentinel)
	}
	if ErrorOf(nil) != nil {
		t.Error("ErrorOf(nil) is not nil")
	}
}

// TestIsSentinelAllocatesNothing: matching against a sentinel is on the
// hot path of every get that misses.
func TestIsSentinelAllocatesNothing(t *testing.T) {
	err := error(&Error{Code: CodeNotFound, Msg: "key not found"})
	if n := testing.AllocsPerRun(100, func() {
		if !errors.Is(err, ErrNotFound) || errors.Is(err, ErrNoSpace) {
			t.Fatal("errors.Is by code is wrong")
		}
	}); n != 0 {
		t.Errorf("errors.Is against a sentinel: %v allocs, want 0", n)
	}
}
