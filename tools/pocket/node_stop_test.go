package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/pocket"
)

// TestNodeStoppedBySignalSaysWhatGoes: a node stopped by SIGINT while it
// holds values says so on stderr, with their count, and that a drain
// would have moved them. Before, it exited 0 without a word (a new user's
// trial: Ctrl-C on a hand-started node holding two jobs' values).
func TestNodeStoppedBySignalSaysWhatGoes(t *testing.T) {
	bin := buildPocketBinary(t)
	ctl, err := controller.New(controller.Config{Secret: hintSecret, HeartbeatInterval: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	addr, err := ctl.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "node", "--insecure", "--controller", addr.String(), "--listen", "127.0.0.1:0", "--dram", "64MiB")
	cmd.Env = cleanEnv("POCKET_SECRET=" + string(hintSecret))
	var errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	for deadline := time.Now().Add(15 * time.Second); activeNodes(ctl) < 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the node never became active: %s", errOut.String())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := pocket.Dial(ctx, addr.String(), pocket.Config{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	j, err := s.RegisterJob(ctx, "stop", pocket.Hints{})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b"} {
		if err := j.Put(ctx, k, []byte("value")); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("node stopped by SIGINT: %v; want exit 0\n%s", err, errOut.String())
	}
	if out := errOut.String(); !strings.Contains(out, "the values it holds go with it") || !strings.Contains(out, "values=2") ||
		!strings.Contains(out, "pocket node drain ADDR") {
		t.Errorf("stderr of a node stopped holding 2 values:\n%s", out)
	}
}
