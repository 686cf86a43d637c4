package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/internal/units"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/nvme"
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
	nvme     string
	staging  string
}

func (f *nodeFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&f.listen, "listen", "127.0.0.1:7100", "address to serve the data plane on")
	fs.StringVar(&f.dram, "dram", "1GiB", "DRAM tier capacity (0 for none)")
	fs.IntVar(&f.loops, "loops", 0, "event loops (default: one per core)")
	fs.DurationVar(&f.busyPoll, "busy-poll", 0, "spin this long polling sockets before sleeping (0: off)")
	fs.IntVar(&f.maxConns, "max-conns", 10000, "connection limit")
	fs.StringVar(&f.nvme, "nvme", "", "NVMe tier as PATH:SIZE (a block device or a file, opened with O_DIRECT)")
	fs.StringVar(&f.staging, "nvme-staging", "256MiB", "aligned memory for NVMe transfers in flight")
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
	fmt.Printf("pocket node serving on %s (dram %s, nvme %q)\n", node.Addr(), f.dram, f.nvme)
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
	if f.nvme != "" {
		t, dev, err := openNVMe(f.nvme, f.staging)
		if err != nil {
			closeTiers()
			return nil, nil, err
		}
		cfg.NVMe = t
		tiers = append(tiers, t)
		prev := closeTiers
		closeTiers = func() {
			prev()
			_ = dev.Close()
		}
	}
	n, err := dataplane.NewNode(cfg)
	if err != nil {
		closeTiers()
		return nil, nil, err
	}
	return n, closeTiers, nil
}

// openNVMe opens PATH:SIZE as the NVMe tier. Transfers use a private
// staging region, not the DRAM tier's arena, so NVMe traffic never eats
// into DRAM capacity.
func openNVMe(spec, staging string) (*dataplane.NVMe, *nvme.Device, error) {
	i := strings.LastIndexByte(spec, ':')
	if i <= 0 {
		return nil, nil, fmt.Errorf("--nvme %q: want PATH:SIZE", spec)
	}
	size, err := units.ParseSize(spec[i+1:])
	if err != nil {
		return nil, nil, fmt.Errorf("--nvme: %w", err)
	}
	pool, err := units.ParseSize(staging)
	if err != nil {
		return nil, nil, fmt.Errorf("--nvme-staging: %w", err)
	}
	dev, err := nvme.Open(spec[:i], nvme.Options{Size: size, BufferPool: pool})
	if err != nil {
		return nil, nil, err
	}
	t, err := dataplane.NewNVMe(dev, dataplane.NVMeOptions{})
	if err != nil {
		dev.Close()
		return nil, nil, err
	}
	return t, dev, nil
}
