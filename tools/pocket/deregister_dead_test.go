package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/pocket"
	"github.com/pocketstore/pocket/wire"
)

// TestDeregisterCountsTheLiveNodesBesideADeadOne: a job over two nodes
// put values with --persist on both; one node dies (stopped, then marked
// dead). pocket job deregister --json knows the dead node (dead_nodes)
// and that its values are gone; the live node keeps its share, which it
// must count (persisted_counted true, persisted_bytes its bytes), as the
// Python client's count over the deregistration's map does. The count
// asked the dead node too, through a credential that does not mark it
// dead, waited out its 3 s, and printed persisted_counted false with no
// failure named (persisted_count_failures []), the human form "not
// counted, as the dead nodes failed the count": whenever a node of the
// map is dead, the figure is never given.
func TestDeregisterCountsTheLiveNodesBesideADeadOne(t *testing.T) {
	bin := buildPocketBinary(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctl, err := controller.New(controller.Config{Secret: hintSecret, HeartbeatInterval: 100 * time.Millisecond,
		DeadAfter: time.Hour, ForgetAfter: time.Hour, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	laddr, err := ctl.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := laddr.String()
	a, _ := startHintNode(t, addr, 8000, quiet)
	b, stopB := startHintNode(t, addr, 8000, quiet)
	deadline := time.Now().Add(10 * time.Second)
	for activeNodes(ctl) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 2 nodes active", activeNodes(ctl))
		}
		time.Sleep(20 * time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := pocket.Dial(ctx, addr, pocket.Config{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	j, err := s.RegisterJob(ctx, "dead-beside-live", pocket.Hints{PeakMbps: 16000})
	if err != nil {
		t.Fatal(err)
	}
	m := ctl.Status().Jobs[0]
	if len(m.Nodes) != 2 {
		t.Fatalf("the job's map %+v, want both nodes", m.Nodes)
	}
	for i := range 32 {
		if err := j.Put(ctx, fmt.Sprintf("kept/%02d", i), []byte("a value kept after the job"), pocket.Persist()); err != nil {
			t.Fatal(err)
		}
	}
	stopB()
	if err := ctl.SetNodeState(b, wire.NodeDead); err != nil {
		t.Fatal(err)
	}

	env := cleanEnv("POCKET_CONTROLLER="+addr, envToken+"="+fmt.Sprintf("%x", j.Token()))
	out, errOut, code := pocketRun(t, bin, env, "", "job", "deregister", "--insecure", "--json", j.ID())
	if code != 0 {
		t.Fatalf("deregister --json: exit %d: %s %s", code, out, errOut)
	}
	var v deregisterJSON
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	if len(v.DeadNodes) != 1 || v.DeadNodes[0] != b {
		t.Fatalf("dead_nodes %q, want [%s]", v.DeadNodes, b)
	}
	if !v.PersistedCounted || v.PersistedBytes <= 0 {
		t.Errorf("the live node %s keeps the job's values beside the dead %s: persisted_counted %v, persisted_bytes %d, persisted_count_failures %q; want counted, its bytes",
			a, b, v.PersistedCounted, v.PersistedBytes, v.PersistedCountFailures)
	}
}
