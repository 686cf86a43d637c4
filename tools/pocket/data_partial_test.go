package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/pocket"
	"github.com/pocketstore/pocket/wire"
)

// TestLsSaysWhenANodeIsDeadOrLost (new user's trial): after one of a
// job's two nodes died, pocket ls lists the live node's keys, says on
// stderr that the dead node's are not listed, and exits 3 (partial); once
// the node left the map dead (past the grace), it says its values are
// lost, exit 3 still; rm in the dead node's grace says its keys there
// were not deleted (exit 3), or fails on the dead node when it owns the
// name itself. On the old code ls exited 0 listing only the
// surviving keys with no note, and rm likewise.
func TestLsSaysWhenANodeIsDeadOrLost(t *testing.T) {
	bin := buildPocketBinary(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctl, err := controller.New(controller.Config{Secret: hintSecret, HeartbeatInterval: 100 * time.Millisecond,
		DeadAfter: time.Hour, ForgetAfter: time.Hour, DeadNodeGrace: 3 * time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	laddr, err := ctl.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := laddr.String()
	startHintNode(t, addr, 8000, quiet)
	b, stopB := startHintNode(t, addr, 8000, quiet)
	for deadline := time.Now().Add(10 * time.Second); activeNodes(ctl) < 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 2 nodes active", activeNodes(ctl))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := pocket.Dial(ctx, addr, pocket.Config{Insecure: true, ChunkSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	j, err := s.RegisterJob(ctx, "partial", pocket.Hints{PeakMbps: 16000})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(j.Map().Nodes); n != 2 {
		t.Fatalf("the job's map has %d node(s), want both", n)
	}
	for i := range 32 {
		if err := j.Put(ctx, fmt.Sprintf("k/%02d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	env := cleanEnv("POCKET_CONTROLLER="+addr, envToken+"="+fmt.Sprintf("%x", j.Token()))
	if out, errOut, code := pocketRun(t, bin, env, "", "ls", "--insecure", j.ID()); code != 0 || strings.Count(out, "\n") != 32 || errOut != "" {
		t.Fatalf("ls with both nodes live: exit %d, %d line(s), stderr %q; want 32 keys, exit 0, no note", code, strings.Count(out, "\n"), errOut)
	}

	// Objects of 4 chunks over both nodes: once b is lost, some have their
	// manifest and first chunk on the live node and a later chunk on b.
	big := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i%26)}, 200<<10) }
	for i := range 32 {
		if err := j.Put(ctx, fmt.Sprintf("big/%02d", i), big(i)); err != nil {
			t.Fatal(err)
		}
	}

	stopB()
	if err := ctl.SetNodeState(b, wire.NodeDead); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := pocketRun(t, bin, env, "", "ls", "--insecure", j.ID(), "k/")
	listed := strings.Count(out, "\n")
	if code != exitPartial || listed == 0 || listed == 32 ||
		!strings.Contains(errOut, "1 of the 2 node(s) of job "+j.ID()+"'s map are dead ("+b+")") {
		t.Errorf("ls with node %s dead: exit %d, %d line(s), stderr %q; want the live node's keys, exit %d and a note naming it dead",
			b, code, listed, errOut, exitPartial)
	}
	// rm k deletes the keys under k/ on the live node; the name k itself
	// is asked of its owner, which (as the ports fall) may be the dead
	// node: then rm fails on it, exit 3 as --help says (before: 1), saying
	// what it deleted first.
	out, errOut, code = pocketRun(t, bin, env, "", "rm", "--insecure", j.ID(), "k")
	switch {
	case code == exitPartial && strings.HasPrefix(out, "deleted ") && strings.Contains(errOut, "are not deleted"):
	case code == exitPartial && strings.Contains(errOut, "before the error") && strings.Contains(errOut, b+" is dead"):
	default:
		t.Errorf("rm k with node %s dead: exit %d, stdout %q, stderr %q; want the count, exit %d and a note that its keys stay "+
			"(or, k's owner being the dead node, saying so and what was deleted)", b, code, out, errOut, exitPartial)
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		m, err := ctl.GetMap(j.ID(), j.Token())
		if err == nil && len(m.Lost) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s did not leave the job's map: %v %v", b, m, err)
		}
	}
	// A get to stdout that fails prints nothing there: before, an object
	// whose later chunk was on the lost node printed its first chunks,
	// then failed (a new user's trial).
	failed := 0
	for i := range 32 {
		key := fmt.Sprintf("big/%02d", i)
		out, errOut, code := pocketRun(t, bin, env, "", "get", "--insecure", j.ID(), key)
		switch {
		case code == 0 && out == string(big(i)):
		case code == 1 && out == "" && strings.Contains(errOut, "lost"):
			failed++
		default:
			t.Fatalf("get %s with node %s lost: exit %d, %d bytes on stdout, stderr %q; want the whole value, or nothing and lost",
				key, b, code, len(out), errOut)
		}
	}
	if failed == 0 {
		t.Fatalf("no get of the 32 objects over both nodes answered lost with node %s lost", b)
	}
	if err := j.RemoveAll(ctx, "big"); err != nil && !errors.Is(err, pocket.ErrLost) {
		t.Fatal(err)
	}
	if err := j.Put(ctx, "after", []byte("v")); err != nil { // placed on the live node now
		t.Fatal(err)
	}
	out, errOut, code = pocketRun(t, bin, env, "", "ls", "--insecure", j.ID())
	if code != exitPartial || out != "after\n" || !strings.Contains(errOut, "1 node(s) left job "+j.ID()+"'s map without handing their values over ("+b+" at epoch") ||
		!strings.Contains(errOut, "lost") || strings.Contains(errOut, "are dead") {
		t.Errorf("ls with node %s lost: exit %d, stdout %q, stderr %q; want the key put since, exit %d and a note that its values are lost",
			b, code, out, errOut, exitPartial)
	}
}
