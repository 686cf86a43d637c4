package main

import (
	"os"
	"slices"
	"testing"
)

// TestBenchTLSFlags: bench takes --tls-dir and --insecure, as the README
// says every command reaching the controller does, and hands them to the
// SDK under it through $POCKET_TLS_DIR (its workers inherit it). Before,
// both were unknown flags (a new-user trial), and a bench against a
// cluster other than ~/.pocket's could only set the variable.
func TestBenchTLSFlags(t *testing.T) {
	t.Setenv(envTLSDir, "")
	rest, err := benchTLSArgs([]string{"--controller", "c:1", "--tls-dir", "certs", "--", "--insecure"})
	if err != nil || os.Getenv(envTLSDir) != "certs" || !slices.Equal(rest, []string{"--controller", "c:1", "--", "--insecure"}) {
		t.Errorf("--tls-dir certs: args %q, %s=%q, %v", rest, envTLSDir, os.Getenv(envTLSDir), err)
	}
	rest, err = benchTLSArgs([]string{"--insecure", "--controller=c:1"})
	if _, set := os.LookupEnv(envTLSDir); err != nil || set || !slices.Equal(rest, []string{"--controller=c:1"}) {
		t.Errorf("--insecure: args %q, %s set %v, %v", rest, envTLSDir, set, err)
	}
	t.Setenv(envTLSDir, "kept")
	if _, err := benchTLSArgs([]string{"--insecure=false"}); err != nil || os.Getenv(envTLSDir) != "kept" {
		t.Errorf("--insecure=false: %s=%q, %v", envTLSDir, os.Getenv(envTLSDir), err)
	}
	for _, bad := range [][]string{{"--tls-dir", "d", "--insecure"}, {"--tls-dir"}, {"--insecure=maybe"}} {
		if _, err := benchTLSArgs(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}
