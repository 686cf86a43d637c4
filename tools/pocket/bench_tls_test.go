package main

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/internal/pki"
)

// TestBenchTLSFlags: bench takes --tls-dir and --insecure, as the README
// says every command reaching the controller does, and hands them to the
// SDK under it through $POCKET_TLS_DIR (its workers inherit it). Before,
// both were unknown flags (a new-user trial), and a bench against a
// cluster other than ~/.pocket's could only set the variable.
func TestBenchTLSFlags(t *testing.T) {
	certs := t.TempDir()
	if err := pki.Init(certs, []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envTLSDir, "")
	rest, err := benchTLSArgs([]string{"--controller", "c:1", "--tls-dir", certs, "--", "--insecure"})
	if err != nil || os.Getenv(envTLSDir) != certs || !slices.Equal(rest, []string{"--controller", "c:1", "--", "--insecure"}) {
		t.Errorf("--tls-dir %s: args %q, %s=%q, %v", certs, rest, envTLSDir, os.Getenv(envTLSDir), err)
	}
	// A directory without a client certificate is named by its flag, not
	// by the variable the SDK reads (a new user's trial).
	if _, err := benchTLSArgs([]string{"--controller", "c:1", "--tls-dir", t.TempDir()}); err == nil || !strings.Contains(err.Error(), "--tls-dir") {
		t.Errorf("--tls-dir of an empty directory: %v", err)
	}
	// No TLS directory anywhere and no --insecure: a --controller run is
	// refused, not sent over plain TCP (a new user's trial); an --addr
	// run, which reaches no controller, goes on.
	t.Setenv(envTLSDir, "")
	os.Unsetenv(envTLSDir)
	t.Setenv(envDataDir, t.TempDir())
	if _, err := benchTLSArgs([]string{"--controller", "c:1"}); !errors.Is(err, errNoTLS) {
		t.Errorf("--controller without TLS credentials or --insecure: %v, want errNoTLS", err)
	}
	if _, err := benchTLSArgs([]string{"--addr", "n:1"}); err != nil {
		t.Errorf("--addr without TLS credentials: %v", err)
	}
	rest, err = benchTLSArgs([]string{"--insecure", "--controller=c:1"})
	if _, set := os.LookupEnv(envTLSDir); err != nil || set || !slices.Equal(rest, []string{"--controller=c:1"}) {
		t.Errorf("--insecure: args %q, %s set %v, %v", rest, envTLSDir, set, err)
	}
	t.Setenv(envTLSDir, "kept")
	if _, err := benchTLSArgs([]string{"--insecure=false"}); err != nil || os.Getenv(envTLSDir) != "kept" {
		t.Errorf("--insecure=false: %s=%q, %v", envTLSDir, os.Getenv(envTLSDir), err)
	}
	// $POCKET_INSECURE=1 stands for --insecure, and the flags win over it,
	// in the SDK under bench too (a hostile re-check: --insecure=false
	// still ran plain TCP, --tls-dir was refused as both set).
	t.Setenv(envInsecure, "1")
	t.Setenv(envTLSDir, "")
	os.Unsetenv(envTLSDir)
	if _, err := benchTLSArgs([]string{"--controller", "c:1"}); err != nil || os.Getenv(envInsecure) != "1" {
		t.Errorf("$%s=1: %v, %s=%q", envInsecure, err, envInsecure, os.Getenv(envInsecure))
	}
	if _, err := benchTLSArgs([]string{"--controller", "c:1", "--tls-dir", certs}); err != nil || os.Getenv(envTLSDir) != certs || os.Getenv(envInsecure) != "" {
		t.Errorf("--tls-dir beside $%s=1: %v, %s=%q, %s=%q", envInsecure, err, envTLSDir, os.Getenv(envTLSDir), envInsecure, os.Getenv(envInsecure))
	}
	t.Setenv(envInsecure, "1")
	if _, err := benchTLSArgs([]string{"--controller", "c:1", "--insecure=false"}); err != nil || os.Getenv(envInsecure) != "" {
		t.Errorf("--insecure=false beside $%s=1: %v, %s=%q", envInsecure, err, envInsecure, os.Getenv(envInsecure))
	}
	for _, bad := range [][]string{{"--tls-dir", "d", "--insecure"}, {"--tls-dir"}, {"--insecure=maybe"}} {
		if _, err := benchTLSArgs(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}
