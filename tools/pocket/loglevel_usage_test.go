package main

import (
	"strings"
	"testing"
)

// TestBadLogLevelIsAUsageError: a --log-level or --log-format out of its
// set is bad usage, exit 2 as an unknown flag is, with the choices named
// (an operator's trial: it exited 1), before anything starts.
func TestBadLogLevelIsAUsageError(t *testing.T) {
	bin := buildPocketBinary(t)
	for _, args := range [][]string{
		{"node", "--log-level", "verbose"},
		{"controller", "--log-level", "verbose"},
		{"up", "--log-level", "verbose"},
		{"node", "--log-format", "xml"},
	} {
		out, errOut, code := pocketRun(t, bin, cleanEnv(), "", args...)
		if code != 2 || !strings.Contains(errOut, "want ") || !strings.Contains(errOut, "Usage:") {
			t.Errorf("pocket %s: exit %d, stdout %q, stderr %q; want exit 2 with the choices and the usage line", strings.Join(args, " "), code, out, errOut)
		}
	}
}
