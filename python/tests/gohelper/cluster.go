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

// clusterSecret is the shared secret of the helper's cluster (loopback
// only, for tests).
var clusterSecret = []byte("gohelper-cluster-secret-0123456789")

// cluster runs a controller and nodes in this process, over plain TCP on
// loopback, for tests that kill and restart nodes or change a job's map:
//
//	gohelper cluster NODES GRACE [DEADAFTER]
//
// starts NODES nodes of 64 MiB DRAM and a controller that removes a node
// dead for GRACE (a Go duration; negative: never) from the maps
// (heartbeats every 100 ms, a silent node dead after DEADAFTER, a Go
// duration, 500 ms by default: with a long one a killed node stays active
// until a "dead" command). It prints "controller ADDR", one "node ADDR" per
// node and "ready" once the controller counts them active, then reads
// commands on stdin, one a line, answering each with "ok", a number or
// "error: ...":
//
//	kill ADDR      stop the node at ADDR (its data is gone)
//	dead ADDR      mark the node at ADDR dead (Controller.SetNodeState)
//	start ADDR     start an empty node listening on ADDR (answered once
//	               it is active)
//	grow JOB       add a node to the job's map (Controller.GrowJob) and
//	               wait until the change has ended (at most a minute)
//	shrink JOB     take a node out of it (Controller.ShrinkJob), and wait
//	drain ADDR     drain the node at ADDR from the cluster (Controller.Drain)
//	               and stop it as soon as the controller retires it, as
//	               the autoscaler's scale-in does (at most a minute)
//	mute ADDR      stop the agent of the node at ADDR: the node serves
//	               on, cut off from its controller (not from clients)
//	unmute ADDR    start its agent again
//	values JOB     print how many records (values and chunks) the nodes
//	               hold for the job, summed
//
// It stops, with every node, at the end of stdin.
func cluster(args []string) error {
	if len(args) != 2 && len(args) != 3 {
		return fmt.Errorf("usage: gohelper cluster NODES GRACE [DEADAFTER]")
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 1 {
		return fmt.Errorf("NODES %q: want a positive number", args[0])
	}
	grace, err := time.ParseDuration(args[1])
	if err != nil {
		return fmt.Errorf("GRACE: %w", err)
	}
	deadAfter := 500 * time.Millisecond
	if len(args) == 3 {
		if deadAfter, err = time.ParseDuration(args[2]); err != nil || deadAfter <= 0 {
			return fmt.Errorf("DEADAFTER %q: want a positive Go duration", args[2])
		}
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctl, err := controller.New(controller.Config{Secret: clusterSecret, HeartbeatInterval: 100 * time.Millisecond,
		DeadAfter: deadAfter, DeadNodeGrace: grace, Logger: quiet})
	if err != nil {
		return err
	}
	defer ctl.Close()
	addr, err := ctl.Listen("127.0.0.1:0")
	if err != nil {
		return err
	}
	h := &helperCluster{c: ctl, ctl: addr.String(), log: quiet, nodes: map[string]*helperNode{},
		retired: make(chan string, 16)}
	ctl.OnRetire(func(addr, _ string) {
		select {
		case h.retired <- addr:
		default: // never blocks the controller's sweeper
		}
	})
	defer h.stopAll()
	fmt.Println("controller", addr)
	for range n {
		a, err := h.start("127.0.0.1:0")
		if err != nil {
			return err
		}
		fmt.Println("node", a)
	}
	if err := h.awaitActive(); err != nil {
		return err
	}
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		answer, err := h.command(sc.Text())
		if err != nil {
			answer = "error: " + err.Error()
		}
		fmt.Println(answer)
	}
	return sc.Err()
}

type helperCluster struct {
	c     *controller.Controller
	ctl   string
	log   *slog.Logger
	nodes map[string]*helperNode
	// retired gets the address of every node the controller retires (its
	// OnRetire hook), for drain to stop it.
	retired chan string
}

type helperNode struct {
	node   *dataplane.Node
	tier   *dataplane.DRAM
	cancel context.CancelFunc
	done   chan struct{}
}

// command runs one command line and returns its answer.
func (h *helperCluster) command(line string) (string, error) {
	f := strings.Fields(line)
	if len(f) != 2 {
		return "", fmt.Errorf("want VERB ARG (kill, dead, start, grow, shrink, drain, mute, unmute, values), got %q", line)
	}
	switch f[0] {
	case "kill":
		nd := h.nodes[f[1]]
		if nd == nil {
			return "", fmt.Errorf("no node at %s", f[1])
		}
		nd.stop()
		delete(h.nodes, f[1])
		return "ok", nil
	case "dead":
		return "ok", h.c.SetNodeState(f[1], wire.NodeDead)
	case "start":
		if _, err := h.start(f[1]); err != nil {
			return "", err
		}
		return "ok", h.awaitActive()
	case "grow", "shrink":
		return "ok", h.change(f[0], f[1])
	case "drain":
		return "ok", h.drain(f[1])
	case "mute":
		return "ok", h.mute(f[1])
	case "unmute":
		return "ok", h.unmute(f[1])
	case "values":
		var held int64
		for _, nd := range h.nodes {
			held += nd.node.JobValues(f[1])
		}
		return strconv.FormatInt(held, 10), nil
	}
	return "", fmt.Errorf("unknown command %q", f[0])
}

// change grows or shrinks job's map by one node and waits, at most a
// minute, until the change has ended: the map has its new size, every
// node active.
func (h *helperCluster) change(verb, job string) error {
	before := len(h.mapOf(job))
	change, want := h.c.GrowJob, before+1
	if verb == "shrink" {
		change, want = h.c.ShrinkJob, before-1
	}
	if err := change(job, ""); err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		ns := h.mapOf(job)
		if len(ns) == want && !slices.ContainsFunc(ns, func(m wire.MapNode) bool { return m.State != wire.NodeActive }) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the change did not end in a minute: %+v; left: %s", ns, h.left(job))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// drain drains the node at addr and stops it once the controller has
// retired it: the retire hook's signal, then the node's stop, as the
// autoscaler's scale-in does (its OnRetire hook stops the process). It
// waits at most a minute for the retire.
func (h *helperCluster) drain(addr string) error {
	nd := h.nodes[addr]
	if nd == nil {
		return fmt.Errorf("no node at %s", addr)
	}
	if _, err := h.c.Drain(addr, time.Minute); err != nil {
		return err
	}
	timeout := time.After(time.Minute)
	for {
		select {
		case a := <-h.retired:
			if a != addr {
				continue // an earlier drain's node, stopped already
			}
			nd.stop()
			delete(h.nodes, addr)
			return nil
		case <-timeout:
			return fmt.Errorf("node %s not retired a minute after its drain began", addr)
		}
	}
}

// mapOf is the job's map as the controller's status has it.
func (h *helperCluster) mapOf(job string) []wire.MapNode {
	for _, js := range h.c.Status().Jobs {
		if js.Job == job {
			return js.Nodes
		}
	}
	return nil
}

// left describes, per node, the job's records it holds and how many of
// them are not on their owner under the map's live set.
func (h *helperCluster) left(job string) string {
	var live []placement.Node
	for _, mn := range h.mapOf(job) {
		if mn.State != wire.NodeDraining {
			live = append(live, placement.Node{ID: mn.Addr, Weight: mn.Weight})
		}
	}
	var b strings.Builder
	for a, nd := range h.nodes {
		fmt.Fprintf(&b, "%s holds %d, %d misplaced; ", a, nd.node.JobValues(job), nd.node.Misplaced(job, live, a))
	}
	return b.String()
}

// start runs an empty node on listen with its agent, and returns its address.
func (h *helperCluster) start(listen string) (string, error) {
	d, err := dataplane.NewDRAM(64<<20, dataplane.DRAMOptions{})
	if err != nil {
		return "", err
	}
	nd, err := dataplane.NewNode(dataplane.NodeConfig{AwaitSync: true, Listen: listen, DRAM: d,
		Guard: dataplane.NewTokenGuard(clusterSecret), Net: netio.Config{Loops: 1}, Logger: h.log})
	if err != nil {
		d.Close()
		return "", err
	}
	hn := &helperNode{node: nd, tier: d}
	h.runAgent(hn)
	h.nodes[nd.Addr().String()] = hn
	return nd.Addr().String(), nil
}

// runAgent starts n's agent: it registers the node and heartbeats until
// n.cancel.
func (h *helperCluster) runAgent(n *helperNode) {
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done = cancel, make(chan struct{})
	a := n.node.Addr().String()
	mc := metaclient.New(h.ctl, metaclient.Options{Secret: clusterSecret, Logger: h.log})
	go func(done chan struct{}) {
		defer close(done)
		defer mc.Close()
		_ = agent.Run(ctx, agent.Config{Node: n.node, Addr: a, Controller: mc, Logger: h.log})
	}(n.done)
}

// mute stops the agent of the node at addr, which serves on: cut off from
// its controller, not from its clients.
func (h *helperCluster) mute(addr string) error {
	nd := h.nodes[addr]
	if nd == nil {
		return fmt.Errorf("no node at %s", addr)
	}
	nd.cancel()
	<-nd.done
	return nil
}

// unmute starts the agent of a muted node again.
func (h *helperCluster) unmute(addr string) error {
	nd := h.nodes[addr]
	if nd == nil {
		return fmt.Errorf("no node at %s", addr)
	}
	h.runAgent(nd)
	return nil
}

// awaitActive waits until the controller counts every running node active.
func (h *helperCluster) awaitActive() error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		active := map[string]bool{}
		for _, ns := range h.c.Status().Nodes {
			if ns.State == wire.NodeActive {
				active[ns.Addr] = true
			}
		}
		missing := 0
		for a := range h.nodes {
			if !active[a] {
				missing++
			}
		}
		if missing == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d node(s) not active after 20 s", missing)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (n *helperNode) stop() {
	n.cancel()
	<-n.done
	n.node.Close()
	n.tier.Close()
}

func (h *helperCluster) stopAll() {
	for a, n := range h.nodes {
		n.stop()
		delete(h.nodes, a)
	}
}
