package micro

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/pocketstore/pocket/wire"
	"io"

	"github.com/pocketstore/pocket/perf/workload"
)

const usageText = `usage: pocket bench micro [--nodes A,B | --controller ADDR] [--nvme-nodes A,B]
                         [--redis redis://HOST:PORT] [--out DIR] [--json] [flags]

Pocket's microbenchmarks on this machine: unloaded 1 KiB put/get/lookup
latency, one node's throughput with 1 to N clients, small-request IOPS,
for each store given. With --out, saves micro.json, micro.md and PNG plots.

`

// Main runs `pocket bench micro` and returns the exit status.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, out, asJSON, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	r, err := Run(ctx, c)
	if err != nil {
		fmt.Fprintf(stderr, "pocket bench micro: %v\n", err)
		return 1
	}
	if out != "" {
		if err := r.Save(out); err != nil {
			fmt.Fprintf(stderr, "pocket bench micro: %v\n", err)
			return 1
		}
	}
	if asJSON {
		json.NewEncoder(stdout).Encode(r)
	} else {
		r.WriteMarkdown(stdout)
	}
	return 0
}

func parse(args []string, errOut io.Writer) (Config, string, bool, error) {
	var c Config
	fs := flag.NewFlagSet("micro", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.Usage = func() { fmt.Fprint(errOut, usageText); fs.PrintDefaults() }
	nodes := fs.String("nodes", "", "pocket storage nodes `A,B` (DRAM tier, static job)")
	ctl := fs.String("controller", "", "pocket controller `ADDR` (instead of --nodes)")
	nvme := fs.String("nvme-nodes", "", "pocket nodes `A,B` started with --nvme (NVMe tier)")
	redis := fs.String("redis", "", "Redis server `redis://HOST:PORT`")
	out := fs.String("out", "", "save JSON, Markdown and PNG plots in `DIR`")
	asJSON := fs.Bool("json", false, "print the report as JSON instead of Markdown")
	fs.IntVar(&c.Samples, "samples", 2000, "requests per latency cell")
	fs.IntVar(&c.MaxClients, "clients", 8, "throughput from 1 to this many clients (doubling)")
	fs.IntVar(&c.Inflight, "inflight", 64, "requests in flight for IOPS")
	fs.DurationVar(&c.Duration, "duration", 1e9, "time per throughput cell")
	if err := fs.Parse(args); err != nil {
		return c, "", false, err
	}
	if fs.NArg() > 0 {
		return c, "", false, usageErr(fs, "unexpected argument %q", fs.Arg(0))
	}
	if err := addStores(&c, *nodes, *ctl, *nvme, *redis); err != nil {
		return c, "", false, usageErr(fs, "%v", err)
	}
	return c, *out, *asJSON, nil
}

func addStores(c *Config, nodes, ctl, nvme, redis string) error {
	switch {
	case nodes != "" && ctl != "":
		return errors.New("give --nodes or --controller, not both")
	case nodes != "":
		t, err := workload.ParseNodes(nodes)
		if err != nil {
			return err
		}
		c.Stores = append(c.Stores, Store{Name: "pocket-dram", Target: t})
	case ctl != "":
		c.Stores = append(c.Stores, Store{Name: "pocket-dram", Target: workload.Target{Kind: workload.KindPocket, Controller: ctl}})
	}
	if nvme != "" {
		t, err := workload.ParseNodes(nvme)
		if err != nil {
			return err
		}
		t.Tier = wire.TierNVMe
		c.Stores = append(c.Stores, Store{Name: "pocket-nvme", Target: t})
	} else {
		c.Notes = append(c.Notes, "no NVMe-tier node given (--nvme-nodes): the NVMe rows are skipped")
	}
	if redis != "" {
		t, err := workload.ParseRedisURL(redis)
		if err != nil {
			return err
		}
		c.Stores = append(c.Stores, Store{Name: "redis", Target: t})
	}
	if len(c.Stores) == 0 {
		return errors.New("no store to measure: give --nodes, --nvme-nodes or --redis")
	}
	return nil
}

func usageErr(fs *flag.FlagSet, format string, a ...any) error {
	err := fmt.Errorf(format, a...)
	fmt.Fprintf(fs.Output(), "pocket bench micro: %v\n", err)
	fs.Usage()
	return err
}
