package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/dataplane/agent"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// clusterSecret is the shared secret of the helper's cluster (loopback
// only, for tests).
var clusterSecret = []byte("gohelper-cluster-secret-0123456789")

// cluster runs a controller and nodes in this process, over plain TCP on
// loopback, for tests that kill and restart nodes:
//
//	gohelper cluster NODES GRACE
//
// starts NODES nodes of 64 MiB DRAM and a controller that removes a node
// dead for GRACE (a Go duration) from the maps (heartbeats every 100 ms,
// dead after 500 ms). It prints "controller ADDR", one "node ADDR" per
// node and "ready" once the controller counts them active, then reads commands on stdin, one a line, answering
// each with "ok" or "error: ...":
//
//	kill ADDR      stop the node at ADDR (its data is gone)
//	start ADDR     start an empty node listening on ADDR (answered once
//	               it is active)
//
// It stops, with every node, at the end of stdin.
func cluster(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("usage: gohelper cluster NODES GRACE")
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 1 {
		return fmt.Errorf("NODES %q: want a positive number", args[0])
	}
	grace, err := time.ParseDuration(args[1])
	if err != nil {
		return fmt.Errorf("GRACE: %w", err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctl, err := controller.New(controller.Config{Secret: clusterSecret, HeartbeatInterval: 100 * time.Millisecond,
		DeadAfter: 500 * time.Millisecond, DeadNodeGrace: grace, Logger: quiet})
	if err != nil {
		return err
	}
	defer ctl.Close()
	addr, err := ctl.Listen("127.0.0.1:0")
	if err != nil {
		return err
	}
	h := &helperCluster{c: ctl, ctl: addr.String(), log: quiet, nodes: map[string]*helperNode{}}
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
		if err := h.command(sc.Text()); err != nil {
			fmt.Println("error:", err)
		} else {
			fmt.Println("ok")
		}
	}
	return sc.Err()
}

type helperCluster struct {
	c     *controller.Controller
	ctl   string
	log   *slog.Logger
	nodes map[string]*helperNode
}

type helperNode struct {
	node   *dataplane.Node
	tier   *dataplane.DRAM
	cancel context.CancelFunc
	done   chan struct{}
}

func (h *helperCluster) command(line string) error {
	f := strings.Fields(line)
	if len(f) != 2 {
		return fmt.Errorf("want kill ADDR or start ADDR, got %q", line)
	}
	switch f[0] {
	case "kill":
		nd := h.nodes[f[1]]
		if nd == nil {
			return fmt.Errorf("no node at %s", f[1])
		}
		nd.stop()
		delete(h.nodes, f[1])
		return nil
	case "start":
		if _, err := h.start(f[1]); err != nil {
			return err
		}
		return h.awaitActive()
	}
	return fmt.Errorf("unknown command %q", f[0])
}

// start runs an empty node on listen with its agent, and returns its address.
func (h *helperCluster) start(listen string) (string, error) {
	d, err := dataplane.NewDRAM(64<<20, dataplane.DRAMOptions{})
	if err != nil {
		return "", err
	}
	nd, err := dataplane.NewNode(dataplane.NodeConfig{Listen: listen, DRAM: d,
		Guard: dataplane.NewTokenGuard(clusterSecret), Net: netio.Config{Loops: 1}, Logger: h.log})
	if err != nil {
		d.Close()
		return "", err
	}
	ctx, cancel := context.WithCancel(context.Background())
	hn := &helperNode{node: nd, tier: d, cancel: cancel, done: make(chan struct{})}
	a := nd.Addr().String()
	mc := metaclient.New(h.ctl, metaclient.Options{Secret: clusterSecret, Logger: h.log})
	go func() {
		defer close(hn.done)
		defer mc.Close()
		_ = agent.Run(ctx, agent.Config{Node: nd, Addr: a, Controller: mc, Logger: h.log})
	}()
	h.nodes[a] = hn
	return a, nil
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
