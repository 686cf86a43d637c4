package archtest

import (
	"errors"
	"testing"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/controller/leader"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/dataplane/slab"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/nvme"
	"github.com/pocketstore/pocket/orchestrator/k8s"
	"github.com/pocketstore/pocket/pocket"
	"github.com/pocketstore/pocket/wire"
)

// TestOneClosed: "closed" has one definition, wire.CodeClosed. Every
// package's ErrClosed carries it, so errors.Is matches any of them against
// wire.ErrClosed and against each other, and a node answers any of them
// with the code a client can test for.
func TestOneClosed(t *testing.T) {
	all := map[string]error{
		"client.ErrClosed": client.ErrClosed, "metaclient.ErrClosed": metaclient.ErrClosed,
		"controller.ErrClosed": controller.ErrClosed, "dataplane.ErrClosed": dataplane.ErrClosed,
		"dataplane/slab.ErrClosed": slab.ErrClosed, "nvme.ErrClosed": nvme.ErrClosed,
		"orchestrator/k8s.ErrClosed": k8s.ErrClosed, "controller/leader.ErrClosed": leader.ErrClosed,
		"netio.ErrServerClosed": netio.ErrServerClosed,
	}
	for name, err := range all {
		if wire.CodeOf(err) != wire.CodeClosed || !errors.Is(err, wire.ErrClosed) {
			t.Errorf("%s (%v) has code %v, want wire.CodeClosed", name, err, wire.CodeOf(err))
		}
		for other, e := range all {
			if !errors.Is(e, err) {
				t.Errorf("errors.Is(%s, %s) is false", other, name)
			}
		}
	}
}

// TestSentinelsCarryWireCodes: a package's sentinel error that means what
// a wire code means is a *wire.Error of that code (wire is the one home of
// the definitions both sides share), so errors.Is matches it against
// wire's sentinel and any reply of that code, and a server answers it
// without a translation table.
func TestSentinelsCarryWireCodes(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want *wire.Error
	}{
		{"dataplane.ErrNotFound", dataplane.ErrNotFound, wire.ErrNotFound},
		{"dataplane.ErrNoSpace", dataplane.ErrNoSpace, wire.ErrNoSpace},
		{"dataplane.ErrTooLarge", dataplane.ErrTooLarge, wire.ErrTooLarge},
		{"dataplane.ErrIO", dataplane.ErrIO, wire.ErrIO},
		{"dataplane.ErrBadKey", dataplane.ErrBadKey, wire.ErrBadKey},
		{"dataplane.ErrExists", dataplane.ErrExists, wire.ErrExists},
		{"dataplane.ErrConflict", dataplane.ErrConflict, wire.ErrConflict},
		{"pocket.ErrNotFound", pocket.ErrNotFound, wire.ErrNotFound},
		{"pocket.ErrNoSpace", pocket.ErrNoSpace, wire.ErrNoSpace},
		{"pocket.ErrUnavailable", pocket.ErrUnavailable, wire.ErrUnavailable},
		{"pocket.ErrConflict", pocket.ErrConflict, wire.ErrConflict},
		{"pocket.ErrLost", pocket.ErrLost, wire.ErrLost},
		{"pocket.ErrBadName", pocket.ErrBadName, wire.ErrBadKey},
	} {
		reply := &wire.Error{Code: c.want.Code, Msg: "a node's reply"}
		if wire.CodeOf(c.err) != c.want.Code || !errors.Is(c.err, c.want) || !errors.Is(reply, c.err) {
			t.Errorf("%s (%v) has code %v, want %v", c.name, c.err, wire.CodeOf(c.err), c.want.Code)
		}
	}
}
