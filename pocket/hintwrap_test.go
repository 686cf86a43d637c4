package pocket

import (
	"context"
	"errors"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestHintsThatWouldWrapAreRefused (hostile trial): a lambdas hint the
// wire's uint32 cannot carry, and a compat capacity in GB whose bytes
// would wrap, are refused as malformed before anything is sent. Before,
// Lambdas -1 registered as 4,294,967,295 lambdas (2.6e12 Mb/s allotted)
// and 1<<32 as no hint at all.
func TestHintsThatWouldWrapAreRefused(t *testing.T) {
	s := NewStore(&fixedCtl{}, Config{})
	defer s.Close()
	for _, n := range []int{-1, 1 << 32, 1<<32 + 1} {
		if _, err := s.RegisterJob(context.Background(), "x", Hints{Lambdas: n}); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("Lambdas %d: %v; want malformed", n, err)
		}
	}
	if _, err := s.RegisterJob(context.Background(), "x", Hints{Lambdas: 5}); err == nil || errors.Is(err, wire.ErrMalformed) {
		t.Errorf("Lambdas 5: %v; want the controller's answer", err)
	}
	t.Setenv("POCKET_CONTROLLER", "127.0.0.1:1")
	for _, gb := range []int64{-1, 1 << 33, 1 << 40} {
		if _, err := RegisterJob("x", 0, gb, 0, false); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("capacity %d GB: %v; want malformed", gb, err)
		}
	}
}
