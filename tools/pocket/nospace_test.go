package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/pocket"
	"github.com/pocketstore/pocket/wire"
)

// TestNoSpaceHintSaysOneNode (new user's trial): a put refused for lack
// of space says that the node the value (or a chunk) goes to is full,
// that every job's values there count, and where to look; it no longer
// says every node of the job has no room, nor tells the user to add
// nodes (a cluster at its autoscaler's maximum cannot). Other errors pass
// unchanged.
func TestNoSpaceHintSaysOneNode(t *testing.T) {
	j := staticTwoNodeJob(t)
	full := wire.Errorf(wire.CodeNoSpace, "tier full")
	msg := noSpaceHint(full, j, 3<<20, 1<<20).Error()
	for _, want := range []string{"the value is 3MiB", "the node of the job's 2", "goes to is full", "every job's values there count", "pocket rm job-1 KEY", "pocket status",
		"no deletion makes room for a value larger than the job's nodes hold together", "--capacity"} {
		if !strings.Contains(msg, want) {
			t.Errorf("hint %q does not say %q", msg, want)
		}
	}
	for _, not := range []string{"have no room", "add nodes"} {
		if strings.Contains(msg, not) {
			t.Errorf("hint %q still says %q", msg, not)
		}
	}
	if !errors.Is(noSpaceHint(full, j, 0, 1<<20), wire.ErrNoSpace) {
		t.Error("the hint lost the no-space error")
	}
	other := errors.New("other")
	if noSpaceHint(other, j, 1, 1<<20) != other {
		t.Error("another error was changed")
	}
}

// TestNoSpaceHintNamesLargeChunks (a new user's trial): a job with a size
// allotted is not told to register with a --capacity hint, and a put of
// chunks larger than the default hears that each goes whole to one node
// and that a smaller --chunk-size spreads the value. Before, a job
// allotted 400 MiB, whose 150 MiB value of 64 MiB chunks sat on one of
// its two nodes, was told to register with the hint it had.
func TestNoSpaceHintNamesLargeChunks(t *testing.T) {
	j := staticTwoNodeJob(t)
	full := wire.Errorf(wire.CodeNoSpace, "tier full")
	msg := noSpaceText(full, j.Map(), 400<<20, 90<<20, 64<<20).Error()
	for _, want := range []string{"the job's allotment of 400MiB is room over its nodes together", "chunks of 64MiB (--chunk-size) each go whole to one node",
		"a smaller --chunk-size"} {
		if !strings.Contains(msg, want) {
			t.Errorf("hint %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "register the job with a --capacity") {
		t.Errorf("hint %q tells a job allotted a size to register with a capacity hint", msg)
	}
}

// staticTwoNodeJob is job-1 on two static nodes, closed at the test's end.
func staticTwoNodeJob(t *testing.T) *pocket.Job {
	t.Helper()
	s := pocket.NewStore(nil, pocket.Config{})
	t.Cleanup(func() { s.Close() })
	j, err := s.OpenStatic("job-1", "127.0.0.1:1", "127.0.0.1:2")
	if err != nil {
		t.Fatal(err)
	}
	return j
}
