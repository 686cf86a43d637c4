package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/internal/pki"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/internal/units"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// nodeSubcommand runs `pocket node VERB ...` for verbs other than running
// a node: runNode (node.go) hands its arguments here first, and runs a
// node only when this reports false.
func nodeSubcommand(args []string) (int, bool) {
	if len(args) == 0 || args[0] != "drain" {
		return 0, false
	}
	return runDrain(args[1:]), true
}

// runDrain is `pocket node drain ADDR`: the controller marks the node
// draining, the node moves its data to the jobs' other nodes, and the
// controller retires it (and stops it, when its orchestrator started it).
// A node that keeps persist-after-job values of ended jobs (they cannot
// move: their readers' credentials name the node) is drained only with
// --discard-persisted; without it the controller refuses, naming the jobs
// and bytes, and a drain that finds such values at its end waits.
func runDrain(args []string) int {
	fs := newFlagSet("node drain")
	addr := fs.String("controller", "", "controller address, or a comma-separated list of controllers of which one is active (default $"+metaclient.EnvController+" or "+ctlDefaultAddr+")")
	secretFile := fs.String("secret-file", "", "file holding the cluster secret, mode 0600 (default $"+token.EnvSecret+"); drain orders are signed with it")
	deadline := fs.Duration("deadline", controller.DefaultDrainDeadline, "leave by then even if data is left (a spot instance's notice); "+
		"persisted values of ended jobs hold the node past it unless --discard-persisted")
	discard := fs.Bool("discard-persisted", false, "drain even a node that keeps persist-after-job values of ended jobs, "+
		"destroying them when it leaves (without it such a drain is refused, or waits for them to be deleted)")
	wait := fs.Bool("wait", true, "wait until the node has left, showing its progress")
	var tf tlsFlags
	tf.bind(fs)
	pos, code, ok := parseFlags(fs, args, 1, 1)
	if !ok {
		return code
	}
	key, err := clusterSecret(*secretFile)
	if err != nil {
		return fail("node drain: %v", err)
	}
	tc, err := tf.config(pki.RoleOperator)
	if err != nil {
		return fail("node drain: %v", err)
	}
	opt := metaclient.Options{TLS: tc}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	d, err := controller.RequestDrainWith(ctx, ctlAddr(*addr), pos[0], controller.DrainOptions{Deadline: *deadline, DiscardPersisted: *discard}, key, opt)
	if err != nil {
		return fail("node drain: %v", ctlError(err, *addr, tf.insecure))
	}
	fmt.Printf("node %s draining; it leaves within %v\n", pos[0], d)
	if *discard {
		fmt.Printf("  persist-after-job values of ended jobs on %s are destroyed when it leaves (--discard-persisted)\n", pos[0])
	}
	if !*wait {
		return 0
	}
	if err := awaitLeft(ctx, metaclient.New(ctlAddr(*addr), opt), pos[0], d+10*time.Second, *discard); err != nil {
		return fail("node drain: %v", err)
	}
	fmt.Printf("node %s drained and gone after %v\n", pos[0], time.Since(start).Round(time.Millisecond))
	return 0
}

// awaitLeft polls the status until the node is no longer listed, printing
// its bytes used and values left whenever they change, and, unless the
// drain discards them, the persisted values of ended jobs that hold it
// back. It closes mc.
func awaitLeft(ctx context.Context, mc *metaclient.Client, node string, limit time.Duration, discard bool) error {
	defer mc.Close()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	last, held := "", ""
	for {
		st, err := mc.Status(ctx)
		if err != nil {
			return err
		}
		found := false
		for _, n := range statusView(st).Nodes {
			if n.Addr != node {
				continue
			}
			found = true
			line := fmt.Sprintf("  %s: %s used", n.State, units.FormatSize(n.UsedBytes))
			if left, ok := n.Metrics[wire.MetricDrainLeft]; ok {
				line += fmt.Sprintf(", %.0f value(s) left", left)
			}
			held = ""
			if jobs := n.Metrics[wire.MetricPersistedJobs]; jobs > 0 && !discard {
				held = fmt.Sprintf("it keeps %s of persist-after-job values of %.0f ended job(s), which leaving would destroy: "+
					"the drain waits until they are deleted (POCKET_CREDENTIAL=... pocket rm KEY), "+
					"or run pocket node drain %s --discard-persisted", units.FormatSize(int64(n.Metrics[wire.MetricPersistedBytes])), jobs, node)
				line += "; " + held
			}
			if line != last {
				fmt.Println(line)
				last = line
			}
		}
		if !found {
			return nil
		}
		select {
		case <-ctx.Done():
			if held != "" {
				return fmt.Errorf("node %s still listed (%s): %w", node, held, ctx.Err())
			}
			return fmt.Errorf("node %s still listed: %w", node, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
