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

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/internal/placement"
	"github.com/pocketstore/pocket/netio"
)

// static runs static nodes (no controller, no tokens, any epoch) in this
// process, over plain TCP on loopback, for tests that set a job's map by
// hand and run a node's mover themselves at a chosen moment (the Go SDK's
// pocket/dropmove_test.go does the same in process):
//
//	gohelper static NODES
//
// starts NODES nodes of 64 MiB DRAM, prints one "node ADDR" per node and
// "ready", then reads commands on stdin, one a line, answering each with
// "ok", a number or "error: ...":
//
//	lease DURATION                  set every node's chunk lease (a Go duration),
//	                                which also bounds how long a node refuses
//	                                chunks of a version it dropped
//	migrate ADDR JOB EPOCH OWNERS   move the job's values held by the node at
//	                                ADDR to their owners among OWNERS (addresses
//	                                joined by commas, weight 1 each, as a static
//	                                job's map has them) with the map's EPOCH, as
//	                                the agent's mover does; print how many moved
//	values JOB                      print how many records (values and chunks)
//	                                the nodes hold for the job, summed
//
// It stops, with every node, at the end of stdin.
func static(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: gohelper static NODES")
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 1 {
		return fmt.Errorf("NODES %q: want a positive number", args[0])
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	nodes := map[string]*dataplane.Node{}
	defer func() {
		for _, nd := range nodes {
			nd.Close()
		}
	}()
	for range n {
		d, err := dataplane.NewDRAM(64<<20, dataplane.DRAMOptions{})
		if err != nil {
			return err
		}
		defer d.Close()
		nd, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", DRAM: d,
			Net: netio.Config{Loops: 1}, Logger: quiet})
		if err != nil {
			return err
		}
		a := nd.Addr().String()
		nodes[a] = nd
		fmt.Println("node", a)
	}
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		answer, err := staticCommand(nodes, sc.Text())
		if err != nil {
			answer = "error: " + err.Error()
		}
		fmt.Println(answer)
	}
	return sc.Err()
}

// staticCommand runs one command line of static and returns its answer.
func staticCommand(nodes map[string]*dataplane.Node, line string) (string, error) {
	f := strings.Fields(line)
	switch {
	case len(f) == 2 && f[0] == "lease":
		d, err := time.ParseDuration(f[1])
		if err != nil || d <= 0 {
			return "", fmt.Errorf("lease %q: want a positive Go duration", f[1])
		}
		for _, nd := range nodes {
			nd.SetChunkLease(d)
		}
		return "ok", nil
	case len(f) == 5 && f[0] == "migrate":
		return staticMigrate(nodes, f[1], f[2], f[3], f[4])
	case len(f) == 2 && f[0] == "values":
		var held int64
		for _, nd := range nodes {
			held += nd.JobValues(f[1])
		}
		return strconv.FormatInt(held, 10), nil
	}
	return "", fmt.Errorf("want lease DURATION, migrate ADDR JOB EPOCH OWNERS or values JOB, got %q", line)
}

// staticMigrate runs the mover of the node at addr for job: its values go
// to their owners among owners (comma-separated addresses, weight 1).
func staticMigrate(nodes map[string]*dataplane.Node, addr, job, epochArg, owners string) (string, error) {
	nd := nodes[addr]
	if nd == nil {
		return "", fmt.Errorf("no node at %s", addr)
	}
	epoch, err := strconv.ParseUint(epochArg, 10, 64)
	if err != nil {
		return "", fmt.Errorf("EPOCH %q: want a decimal number", epochArg)
	}
	var set []placement.Node
	for _, o := range strings.Split(owners, ",") {
		if nodes[o] == nil {
			return "", fmt.Errorf("owner %s: no node there", o)
		}
		set = append(set, placement.Node{ID: o, Weight: 1})
	}
	cl := client.New(client.Options{})
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := nd.Migrate(ctx, dataplane.MigrateJob{Job: job, Epoch: epoch, Nodes: set}, cl, 1)
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(st.Moved, 10), nil
}
