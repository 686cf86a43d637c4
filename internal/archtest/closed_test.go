package archtest

import (
	"errors"
	"testing"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/dataplane/slab"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/nvme"
	"github.com/pocketstore/pocket/wire"
)

// TestOneClosed: "closed" has one definition, wire.CodeClosed. Every
// package's ErrClosed carries it, so errors.Is matches any of them against
// wire.ErrClosed and against each other, and a node answers any of them
// with the code a client can test for.
func TestOneClosed(t *testing.T) {
	all := map[string]error{
		"client": client.ErrClosed, "metaclient": metaclient.ErrClosed, "controller": controller.ErrClosed,
		"dataplane": dataplane.ErrClosed, "dataplane/slab": slab.ErrClosed, "nvme": nvme.ErrClosed,
	}
	for name, err := range all {
		if wire.CodeOf(err) != wire.CodeClosed || !errors.Is(err, wire.ErrClosed) {
			t.Errorf("%s.ErrClosed (%v) has code %v, want wire.CodeClosed", name, err, wire.CodeOf(err))
		}
		for other, e := range all {
			if !errors.Is(e, err) {
				t.Errorf("errors.Is(%s.ErrClosed, %s.ErrClosed) is false", other, name)
			}
		}
	}
}
