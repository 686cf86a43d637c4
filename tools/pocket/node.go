package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/internal/units"
	"github.com/pocketstore/pocket/netio"
)

func init() {
	register("node", "run a storage node", runNode)
}

type nodeFlags struct {
	listen   string
	dram     string
	loops    int
	busyPoll time.Duration
	maxConns int
}

func (f *nodeFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&f.listen, "listen", "127.0.0.1:7100", "address to serve the data plane on")
	fs.StringVar(&f.dram, "dram", "1GiB", "DRAM tier capacity (0 for none)")
	fs.IntVar(&f.loops, "loops", 0, "event loops (default: one per core)")
	fs.DurationVar(&f.busyPoll, "busy-poll", 0, "spin this long polling sockets before sleeping (0: off)")
	fs.IntVar(&f.maxConns, "max-conns", 10000, "connection limit")
}

func runNode(args []string) int {
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	var f nodeFlags
	f.bind(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	node, closeTiers, err := startNode(&f)
	if err != nil {
		return fail("node: %v", err)
	}
	fmt.Printf("pocket node serving on %s (dram %s)\n", node.Addr(), f.dram)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	_ = node.Close()
	closeTiers()
	return 0
}

// startNode builds the tiers and starts the node; closeTiers releases the
// tiers' memory and devices after the node has stopped.
func startNode(f *nodeFlags) (*dataplane.Node, func(), error) {
	dramSize, err := units.ParseSize(f.dram)
	if err != nil {
		return nil, nil, err
	}
	cfg := dataplane.NodeConfig{
		Listen: f.listen,
		Net:    netio.Config{Loops: f.loops, BusyPoll: f.busyPoll, MaxConns: f.maxConns},
		Logger: slog.Default(),
	}
	var tiers []dataplane.Tier
	if dramSize > 0 {
		d, err := dataplane.NewDRAM(dramSize, dataplane.DRAMOptions{})
		if err != nil {
			return nil, nil, err
		}
		cfg.DRAM = d
		tiers = append(tiers, d)
	}
	closeTiers := func() {
		for _, t := range tiers {
			_ = t.Close()
		}
	}
	n, err := dataplane.NewNode(cfg)
	if err != nil {
		closeTiers()
		return nil, nil, err
	}
	return n, closeTiers, nil
}
