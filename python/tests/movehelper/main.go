// Command movehelper runs a controller and storage nodes in one process,
// over plain TCP on loopback, and changes jobs' maps on request, for the
// Python client's tests of puts that span a map change
// (python/tests/test_putmove.py):
//
//	movehelper NODES
//
// starts NODES nodes of 256 MiB DRAM (heartbeats every 100 ms) and prints
// "controller ADDR" and "ready" once they are active. It then reads
// commands on stdin, one a line, answering each with "ok", a number, or
// "error: ...":
//
//	grow JOB       add a node to the job's map (Controller.GrowJob) and
//	               wait until the change has ended (at most a minute)
//	shrink JOB     take a node out of it (Controller.ShrinkJob), and wait
//	values JOB     print how many records (values and chunks) the nodes
//	               hold for the job, summed
//
// It stops, with every node, at the end of stdin.
package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/dataplane/agent"
	"github.com/pocketstore/pocket/internal/placement"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// secret is the helper cluster's shared secret (loopback only, for tests).
var secret = []byte("movehelper-cluster-secret-0123456789")

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "movehelper:", err)
		os.Exit(1)
	}
}

type node struct {
	n    *dataplane.Node
	tier *dataplane.DRAM
	stop func()
}

func run(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: movehelper NODES")
	}
	count, err := strconv.Atoi(args[0])
	if err != nil || count < 1 {
		return fmt.Errorf("NODES %q: want a positive number", args[0])
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctl, err := controller.New(controller.Config{Secret: secret, HeartbeatInterval: 100 * time.Millisecond,
		DeadAfter: 2 * time.Second, Logger: quiet})
	if err != nil {
		return err
	}
	defer ctl.Close()
	addr, err := ctl.Listen("127.0.0.1:0")
	if err != nil {
		return err
	}
	var nodes []*node
	defer func() {
		for _, nd := range nodes {
			nd.stop()
		}
	}()
	for range count {
		nd, err := startNode(addr.String(), quiet)
		if err != nil {
			return err
		}
		nodes = append(nodes, nd)
	}
	if !within(20*time.Second, func() bool { return active(ctl) == count }) {
		return fmt.Errorf("%d of %d nodes active after 20 s", active(ctl), count)
	}
	fmt.Println("controller", addr)
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		answer, err := command(ctl, nodes, sc.Text())
		if err != nil {
			answer = "error: " + err.Error()
		}
		fmt.Println(answer)
	}
	return sc.Err()
}

// startNode runs an empty node with its agent.
func startNode(ctlAddr string, log *slog.Logger) (*node, error) {
	d, err := dataplane.NewDRAM(256<<20, dataplane.DRAMOptions{})
	if err != nil {
		return nil, err
	}
	n, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", DRAM: d,
		Guard: dataplane.NewTokenGuard(secret), Net: netio.Config{Loops: 1}, Logger: log})
	if err != nil {
		d.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	mc := metaclient.New(ctlAddr, metaclient.Options{Secret: secret, Logger: log})
	go func() {
		defer close(done)
		defer mc.Close()
		_ = agent.Run(ctx, agent.Config{Node: n, Addr: n.Addr().String(), Controller: mc, Logger: log})
	}()
	return &node{n: n, tier: d, stop: func() {
		cancel()
		<-done
		n.Close()
		d.Close()
	}}, nil
}

// command runs one command line and returns its answer.
func command(ctl *controller.Controller, nodes []*node, line string) (string, error) {
	f := strings.Fields(line)
	if len(f) != 2 {
		return "", fmt.Errorf("want grow JOB, shrink JOB or values JOB, got %q", line)
	}
	job := f[1]
	switch f[0] {
	case "grow", "shrink":
		before := len(mapOf(ctl, job))
		change, want := ctl.GrowJob, before+1
		if f[0] == "shrink" {
			change, want = ctl.ShrinkJob, before-1
		}
		if err := change(job, ""); err != nil {
			return "", err
		}
		if !within(time.Minute, func() bool { return settled(ctl, job, want) }) {
			return "", fmt.Errorf("the change did not end in a minute: %+v; left: %s", mapOf(ctl, job), left(ctl, nodes, job))
		}
		return "ok", nil
	case "values":
		var held int64
		for _, nd := range nodes {
			held += nd.n.JobValues(job)
		}
		return strconv.FormatInt(held, 10), nil
	}
	return "", fmt.Errorf("unknown command %q", f[0])
}

// left describes, per node, the job's records it holds and how many of
// them are not on their owner under the map's live set.
func left(ctl *controller.Controller, nodes []*node, job string) string {
	var live []placement.Node
	for _, mn := range mapOf(ctl, job) {
		if mn.State != wire.NodeDraining {
			live = append(live, placement.Node{ID: mn.Addr, Weight: mn.Weight})
		}
	}
	var b strings.Builder
	for _, nd := range nodes {
		a := nd.n.Addr().String()
		fmt.Fprintf(&b, "%s holds %d, %d misplaced; ", a, nd.n.JobValues(job), nd.n.Misplaced(job, live, a))
	}
	return b.String()
}

// mapOf is the job's map as the controller's status has it.
func mapOf(ctl *controller.Controller, job string) []wire.MapNode {
	for _, js := range ctl.Status().Jobs {
		if js.Job == job {
			return js.Nodes
		}
	}
	return nil
}

// settled reports whether the job's map has n nodes, all active.
func settled(ctl *controller.Controller, job string, n int) bool {
	ns := mapOf(ctl, job)
	return len(ns) == n && !slices.ContainsFunc(ns, func(m wire.MapNode) bool { return m.State != wire.NodeActive })
}

func active(ctl *controller.Controller) int {
	k := 0
	for _, ns := range ctl.Status().Nodes {
		if ns.State == wire.NodeActive {
			k++
		}
	}
	return k
}

// within polls f every 20 ms for up to d and reports whether it held.
func within(d time.Duration, f func() bool) bool {
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}
