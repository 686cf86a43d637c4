package metaclient

import (
	"errors"
	"fmt"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestRefusalClass: only a registration refused as retired (CodeDraining)
// or as a second node at a live node's address (CodeExists) ends RunNode;
// a controller that is away, busy or cannot confirm a restart yet is
// retried, and so is any heartbeat error.
func TestRefusalClass(t *testing.T) {
	for _, c := range []struct {
		err        error
		registered bool
		want       error // nil: retried
	}{
		{wire.Errorf(wire.CodeDraining, "node x was drained and retired"), false, ErrRetired},
		{wire.Errorf(wire.CodeExists, "another node with incarnation 1 is serving at x"), false, ErrAddressInUse},
		{fmt.Errorf("register: %w", wire.Errorf(wire.CodeExists, "wrapped")), false, ErrAddressInUse},
		{wire.Errorf(wire.CodeUnavailable, "cannot confirm the restart"), false, nil},
		{wire.Errorf(wire.CodeBusy, "16 restart checks are under way"), false, nil},
		{wire.Errorf(wire.CodeBadToken, "proof"), false, nil},
		{errors.New("dial tcp: connection refused"), false, nil},
		{wire.Errorf(wire.CodeDraining, "from a heartbeat"), true, nil},
		{wire.Errorf(wire.CodeExists, "from a heartbeat"), true, nil},
	} {
		got := refusal(c.err, c.registered)
		switch {
		case c.want == nil && got != nil:
			t.Errorf("refusal(%v, registered %v) = %v; want retried", c.err, c.registered, got)
		case c.want != nil && (!errors.Is(got, c.want) || !errors.Is(got, c.err)):
			t.Errorf("refusal(%v, registered %v) = %v; want %v wrapping the controller's error", c.err, c.registered, got, c.want)
		}
	}
}
