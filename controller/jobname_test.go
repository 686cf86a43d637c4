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

// TestJobNames: a job name is 1 to maxNameLen letters, digits, '.', '_'
// and '-', starting with a letter or a digit. Found by a hostile trial: a
// job named "-v" registered as "-v-872483426", an id `pocket job
// deregister` then read as a flag.
func TestJobNames(t *testing.T) {
	c := newTest(t, Config{})
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	for _, name := range []string{"sort", "Sort.2", "9lives", "a-b_c.d", strings.Repeat("x", maxNameLen)} {
		if _, err := c.RegisterJob(name, wire.JobHints{}); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
	for _, name := range []string{"", "-v", "--help", ".hidden", "_x", "a/b", "a b", "é", strings.Repeat("x", maxNameLen+1)} {
		if _, err := c.RegisterJob(name, wire.JobHints{}); !errors.Is(err, wire.ErrBadKey) {
			t.Errorf("%q: %v; want a bad-key refusal", name, err)
		}
	}
}
