package main

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
)

// TestInsecureFromTheEnvironment: $POCKET_INSECURE=1 stands for --insecure
// on a command that talks to the controller (pocket up --insecure prints
// it), a word it does not know or $POCKET_TLS_DIR beside it is a usage
// error, and without it the refusal names it. Before, every command
// against such a cluster needed --insecure (a new user's trial).
func TestInsecureFromTheEnvironment(t *testing.T) {
	bin := buildPocketBinary(t)
	_, addr := drainControllerWith(t, "0123456789abcdef-insecure-env", controller.Config{})
	home := t.TempDir()
	run := func(env ...string) (int, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "status")
		cmd.Env = cleanEnv(append(env, "HOME="+home, "POCKET_CONTROLLER="+addr)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), out.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, out.String()
	}
	for _, c := range []struct {
		env  []string
		code int
		says string
	}{
		{[]string{"POCKET_INSECURE=1"}, 0, "controller " + addr},
		{[]string{"POCKET_INSECURE=true"}, 0, "controller " + addr},
		{nil, 1, "POCKET_INSECURE=1) for a cluster started with --insecure"},
		{[]string{"POCKET_INSECURE=0"}, 1, "no TLS credentials"},
		{[]string{"POCKET_INSECURE=maybe"}, 2, `$POCKET_INSECURE="maybe": want 1`},
		{[]string{"POCKET_INSECURE=1", "POCKET_TLS_DIR=" + home}, 2, "$POCKET_INSECURE and $POCKET_TLS_DIR are both set"},
	} {
		code, out := run(c.env...)
		if code != c.code || !strings.Contains(out, c.says) {
			t.Errorf("pocket status with %v: exit %d, want %d saying %q:\n%s", c.env, code, c.code, c.says, out)
		}
	}
}

// TestUpInsecureBannerPastes: pocket up --insecure prints an export of
// $POCKET_INSECURE that a shell takes as it is (a new user's re-check
// pasted "export POCKET_INSECURE=1   (plain TCP ...)": a syntax error), and
// asks to unset a $POCKET_TLS_DIR left in the shell, which beside it would
// make every command refuse.
func TestUpInsecureBannerPastes(t *testing.T) {
	bin := buildPocketBinary(t)
	dir := t.TempDir()
	env := cleanEnv("HOME="+dir, "POCKET_TLS_DIR="+dir)
	_, what, out := pocketStart(t, bin, env, regexp.MustCompile(`unset (POCKET_\w+)`),
		"up", "--insecure", "--ephemeral", "--nodes", "1", "--dram", "16MiB", "--listen", "127.0.0.1:0", "--data-dir", dir)
	if what != "POCKET_TLS_DIR" {
		t.Fatalf("up --insecure with POCKET_TLS_DIR set asks to unset %q:\n%s", what, out.String())
	}
	var line string
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.Contains(l, "export POCKET_INSECURE=") {
			line = l
		}
	}
	got, err := exec.Command("bash", "-c", line+"\necho \"[$POCKET_INSECURE]\"").CombinedOutput()
	if err != nil || strings.TrimSpace(string(got)) != "[1]" {
		t.Fatalf("the banner's line %q in a shell: %v %q", line, err, got)
	}
}
