package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/orchestrator"
	"github.com/pocketstore/pocket/wire"
)

func init() {
	register("up", "run a local cluster: the controller and N storage nodes", runUp)
}

// upCluster is a running local cluster.
type upCluster struct {
	ctl    *controller.Controller
	addr   string
	secret string
	orch   *orchestrator.Local
}

func (u *upCluster) close() {
	_ = u.orch.Close()
	_ = u.ctl.Close()
}

// startUp starts the controller in this process and the nodes as child
// processes that register with it.
func startUp(ctx context.Context, listen string, nodes int, dram string, quiet bool) (*upCluster, error) {
	secret, err := token.NewSecret()
	if err != nil {
		return nil, err
	}
	logf := log.Printf
	if quiet {
		logf = func(string, ...any) {}
	}
	ctl, err := controller.New(controller.Config{Secret: []byte(secret), Logf: logf})
	if err != nil {
		return nil, err
	}
	addr, err := ctl.Listen(listen)
	if err != nil {
		ctl.Close()
		return nil, err
	}
	u := &upCluster{ctl: ctl, addr: addr.String(), secret: secret,
		orch: &orchestrator.Local{Env: []string{token.EnvSecret + "=" + secret}}}
	if !quiet {
		u.orch.Log = os.Stderr
	}
	for i := 0; i < nodes; i++ {
		if _, err := u.orch.Start(ctx, orchestrator.NodeSpec{DRAM: dram, Controller: u.addr}); err != nil {
			u.close()
			return nil, err
		}
	}
	return u, u.awaitNodes(ctx, nodes)
}

// awaitNodes waits until the controller lists n active nodes.
func (u *upCluster) awaitNodes(ctx context.Context, n int) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		active := 0
		for _, ns := range u.ctl.Status().Nodes {
			if ns.State == wire.NodeActive {
				active++
			}
		}
		if active >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("up: %d of %d nodes registered: %w", active, n, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func runUp(args []string) int {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	listen := fs.String("listen", ctlDefaultAddr, "controller address")
	nodes := fs.Int("nodes", 3, "storage nodes to start")
	dram := fs.String("dram", "1GiB", "DRAM tier of each node")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *nodes < 1 {
		return fail("up: --nodes must be at least 1")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	u, err := startUp(ctx, *listen, *nodes, *dram, false)
	if err != nil {
		if u != nil {
			u.close()
		}
		return fail("%v", err)
	}
	defer u.close()
	fmt.Printf("pocket cluster up: controller %s, %d nodes of %s DRAM\n", u.addr, *nodes, *dram)
	for _, n := range u.orch.Nodes() {
		fmt.Printf("  node %s\n", n.Addr)
	}
	fmt.Printf("point the other commands at it with:\n  export %s=%s\n", metaclient.EnvController, u.addr)
	fmt.Println("then: pocket job register NAME; pocket put JOBID KEY FILE; pocket get JOBID KEY; pocket status. Ctrl-C stops the cluster.")
	<-ctx.Done()
	if errors.Is(ctx.Err(), context.Canceled) {
		fmt.Println("stopping the cluster")
	}
	return 0
}
