package controller

import (
	"errors"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestJobNameRefusalSaysName: a job name the controller refuses is called
// a bad name, not a bad key (a new user's `job register "a b"` read "bad
// key: job name ...": a job name is no key). The wire code stays
// CodeBadKey (its number is the registry's), whose text is "bad name".
func TestJobNameRefusalSaysName(t *testing.T) {
	c := newTest(t, Config{})
	for _, name := range []string{"a b", "", strings.Repeat("x", maxNameLen+1)} {
		_, err := c.RegisterJob(name, wire.JobHints{})
		if !errors.Is(err, wire.ErrBadKey) {
			t.Fatalf("job name %q: %v; want code %d", name, err, wire.CodeBadKey)
		}
		if msg := err.Error(); strings.Contains(msg, "bad key") || !strings.Contains(msg, "bad name: job name") {
			t.Fatalf("job name %q refused as %q; want \"bad name: job name ...\"", name, msg)
		}
	}
}
