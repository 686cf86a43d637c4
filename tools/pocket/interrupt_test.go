package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pocketstore/pocket/pocket"
)

// TestInterruptedPutSaysWhatItLeft: a pocket put from stdin interrupted
// by SIGINT exits 1 saying the put did not complete and the key keeps its
// older value, which it does. Before, it said only "context canceled" (a
// new user's trial).
func TestInterruptedPutSaysWhatItLeft(t *testing.T) {
	bin := buildPocketBinary(t)
	_, addr := startHintCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := pocket.Dial(ctx, addr, pocket.Config{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	j, err := s.RegisterJob(ctx, "interrupt", pocket.Hints{})
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Put(ctx, "k", []byte("older")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "put", "--insecure", j.ID(), "k", "-")
	cmd.Env = cleanEnv("POCKET_CONTROLLER="+addr, envToken+"="+fmt.Sprintf("%x", j.Token()))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	// Two chunks and a bit, then nothing more: the put waits on stdin.
	if _, err := stdin.Write(bytes.Repeat([]byte("x"), 2<<20+1)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 || !strings.Contains(errOut.String(), "interrupted by a signal: the put did not complete; the key keeps its older value") ||
		strings.Contains(errOut.String(), "context canceled") {
		t.Fatalf("interrupted put: %v, stderr %q; want exit 1 and what it left", err, errOut.String())
	}
	if v, err := j.Get(ctx, "k"); err != nil || string(v) != "older" {
		t.Fatalf("the key after the interrupted put: %q %v, want the older value", v, err)
	}
}
