package main

import (
	"os"
	"strings"
	"testing"
)

// TestEmptyKeyIsAUsageError: put and get of an empty KEY are usage errors
// (exit 2), as rm's is, found before anything is dialled. Before, they
// exited 1 with the SDK's error (a new user's trial).
func TestEmptyKeyIsAUsageError(t *testing.T) {
	for name, run := range map[string]func() int{
		"put": func() int { return runPut([]string{"job-1", "", "-"}) },
		"get": func() int { return runGet([]string{"job-1", ""}) },
	} {
		errOut, code := captured(t, &os.Stderr, run)
		if code != 2 || !strings.Contains(errOut, "KEY is empty") {
			t.Errorf("%s with an empty key: exit %d, stderr %q; want 2 and the key named", name, code, errOut)
		}
	}
}
