package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pocketstore/pocket/controller"
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

// exitDrainHeld is pocket node drain's exit status when the drain goes
// on but is held by persist-after-job values of ended jobs (drainHelp).
const exitDrainHeld = 3

func init() {
	helpMore["node drain"] = drainHelp
}

// drainHelp is what pocket node drain --help says after its flags.
const drainHelp = `A job whose other nodes have no room for its values on the node gains an
active node outside its map that has (it joins the job's map as the drain
begins, and takes the drained node's share). A drain whose values the nodes
that would take them (each job's other nodes and such a node, or the node a
job whose only node this is gets) cannot hold even so, beside the drains
running, is refused, naming the node that would overflow and its room:
start another node, delete values there, or wait for the drains running,
then drain again, or order it with --lose-overflow to move what fits and
lose the rest at the deadline (pocket spot does). Without --lose-overflow, a drain whose values
still find no room at its deadline (puts filled the nodes meanwhile) waits
for room, the node serving them, and the command exits 3.

A node that keeps persist-after-job values of ended jobs cannot leave without
destroying them: such a drain is refused unless --discard-persisted, and a
drain that finds such values (a job ended with some while the node drained)
moves the rest of its data and then waits for them, past its --deadline,
until they are deleted (each job's credential: POCKET_CREDENTIAL=... pocket rm
JOB KEY; pocket job credential JOB prints it from the job's token) or the
drain is ordered again with --discard-persisted. The output names
the jobs from the moment the values are seen.

Exit status (with --wait): 0 the node drained and left; 3 the drain goes on
but is held by such values (the node moved everything else, or its deadline
passed): the command stops waiting and says how to release it and to watch
it with pocket status; 1 the drain was refused or failed, or the node was
still listed 10 s past its deadline for another reason; 2 bad usage. Without
--wait: 0 once the controller took the order.
`

// drainDeadlineCheck refuses a negative --deadline as a usage error:
// before, the controller answered it as a malformed frame (exit 1).
func drainDeadlineCheck(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("--deadline %v: must not be negative (0: the default, %v)", d, controller.DefaultDrainDeadline)
	}
	return nil
}

// minBusyRetry is the least time to the deadline at which --retry-busy
// orders a drain refused as busy again.
const minBusyRetry = 5 * time.Second

// requestDrain orders the drain (order, given the deadline left) and
// returns the controller's deadline. With retry, an order refused as busy
// (wire.ErrBusy: a node of one of its jobs is draining or joining, which
// ends within seconds) is sent again each second, with the deadline left
// of the first, until the order passes, fails otherwise, ctx ends, or
// less than minBusyRetry is left. Before, pocket spot's drains of two
// nodes of one job on one host, ordered at once, had one refused as busy:
// that node left as a dead one, its values lost.
func requestDrain(ctx context.Context, retry bool, order func(left time.Duration) (time.Duration, error), deadline time.Duration) (time.Duration, error) {
	end := time.Now().Add(deadline)
	d, err := order(deadline)
	if !errors.Is(err, wire.ErrBusy) {
		return d, err
	}
	if !retry {
		return d, fmt.Errorf("%w (--retry-busy orders it again each second until it passes)", err)
	}
	for said := false; errors.Is(err, wire.ErrBusy) || said && unreached(err); {
		if time.Until(end) < minBusyRetry {
			if !said {
				return d, fmt.Errorf("%w (--retry-busy: the deadline, %v, leaves less than %v to order it again)", err, deadline, minBusyRetry)
			}
			return d, fmt.Errorf("%w (still, with %v left of its deadline)", err, time.Until(end).Round(time.Second))
		}
		if !said {
			fmt.Fprintf(os.Stderr, "pocket: node drain: not yet (%v); ordering it again each second until %v before its deadline\n", err, minBusyRetry)
			said = true
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("interrupted by a signal before the drain was ordered: the node is not draining (the last answer: %v)", err)
		case <-time.After(time.Second):
		}
		d, err = order(time.Until(end).Round(time.Second))
	}
	return d, err
}

// unreached reports whether err is not the controller's answer (a
// *wire.Error) but a failure to reach it (it is restarting, or failing
// over): a drain refused as busy is then ordered again, as a drain ordered
// twice is one drain. Before, a controller restarted while --retry-busy
// waited ended the command with most of the deadline left (a hostile
// trial), and pocket spot's node left as a dead one.
func unreached(err error) bool {
	var we *wire.Error
	return err != nil && !errors.As(err, &we)
}

// runDrain is `pocket node drain ADDR`: the controller marks the node
// draining, the node moves its data to the jobs' other nodes, and the
// controller retires it (and stops it, when its orchestrator started it).
// A node that keeps persist-after-job values of ended jobs (they cannot
// move: their readers' credentials name the node) is drained only with
// --discard-persisted; without it the controller refuses, naming the jobs
// and bytes, and a drain that finds such values at its end waits: the
// command then exits exitDrainHeld (drainHelp).
func runDrain(args []string) int {
	fs := newFlagSet("node drain")
	addr := fs.String("controller", "", "controller address, or a comma-separated list of controllers of which one is active (default $"+metaclient.EnvController+" or "+ctlDefaultAddr+")")
	secretFile := fs.String("secret-file", "", "file holding the cluster secret, mode 0600 (default $"+token.EnvSecret+"); drain orders are signed with it")
	deadline := fs.Duration("deadline", controller.DefaultDrainDeadline, "leave by then even if data is left (a spot instance's notice; 0: the default); "+
		"persisted values of ended jobs hold the node past it unless --discard-persisted")
	discard := fs.Bool("discard-persisted", false, "drain even a node that keeps persist-after-job values of ended jobs, "+
		"destroying them when it leaves (without it such a drain is refused, or waits for them to be deleted)")
	overflow := fs.Bool("lose-overflow", false, "drain even when the nodes that would take the node's values cannot hold them all, "+
		"moving what fits and losing the rest at the deadline (without it such a drain is refused, naming the node that would overflow)")
	retryBusy := fs.Bool("retry-busy", false, "when the drain is refused as busy (a node of one of its jobs is draining or joining), "+
		"order it again each second until the deadline (counted from the first order) is "+minBusyRetry.String()+" away (pocket spot does)")
	wait := fs.Bool("wait", true, "wait until the node has left, showing its progress (exit 3 when persisted values of ended jobs hold it)")
	var tf tlsFlags
	tf.bind(fs)
	addFlagCheck(fs, func() error { return drainDeadlineCheck(*deadline) })
	pos, code, ok := parseFlags(fs, args, 1, 1)
	if !ok {
		return code
	}
	if err := dialAddr.check("NODE", pos[0]); err != nil {
		// A new user's trial drained "localhost" and was told the node
		// is not registered.
		return usageError("node drain", err)
	}
	if *deadline == 0 {
		*deadline = controller.DefaultDrainDeadline
	}
	key, tc, code, ok := operatorCreds("node drain", *secretFile, &tf)
	if !ok {
		return code
	}
	opt := metaclient.Options{TLS: tc}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	req := opt
	req.RetryFor = ctlRetryFor(ctlAddr(*addr)) // the drain's wait below rides out a restart
	opts := controller.DrainOptions{Deadline: *deadline, DiscardPersisted: *discard, LoseOverflow: *overflow}
	d, err := requestDrain(ctx, *retryBusy, func(left time.Duration) (time.Duration, error) {
		opts.Deadline = left
		return controller.RequestDrainWith(ctx, ctlAddr(*addr), pos[0], opts, key, req)
	}, *deadline)
	if err != nil {
		return fail("node drain: %v%s", ctlError(err, *addr, tf.insecure), wrongSecretHint(err))
	}
	ordered := time.Now() // after the busy refusals --retry-busy rode out
	if *discard {
		// Nothing holds such a drain: it ends by its deadline.
		fmt.Printf("node %s draining; it leaves within %v\n", pos[0], d)
		fmt.Printf("  persist-after-job values of ended jobs on %s are destroyed when it leaves (--discard-persisted)\n", pos[0])
	} else if d <= 0 {
		// A drain ordered again past its deadline: the order does not
		// lengthen it, and something holds it (said below).
		fmt.Printf("node %s is draining already, past its deadline; it leaves once what holds it is resolved\n", pos[0])
	} else {
		fmt.Printf("node %s draining; its data moves within %v, then it leaves "+
			"(persist-after-job values of ended jobs, if it gets any, hold it until deleted)\n", pos[0], d)
	}
	if !*wait {
		return 0
	}
	w := drainWait{node: pos[0], start: start, deadline: ordered.Add(d), limit: d + 10*time.Second, discard: *discard, overflow: *overflow}
	left, err := w.await(ctx, metaclient.New(ctlAddr(*addr), opt))
	var held *heldError
	switch {
	case errors.As(err, &held):
		fmt.Fprintf(os.Stderr, "pocket: node drain: %v\n", err)
		return exitDrainHeld
	case err != nil:
		return fail("node drain: %v", err)
	case left != nil && left.Lost:
		return fail("node drain: node %s left after %v, but not drained: %s; the values it still held are lost "+
			"(their keys answer lost: recompute them)", pos[0], time.Since(start).Round(time.Millisecond), left.Why)
	}
	how := ""
	if left != nil && left.Why != "" {
		how = " (" + left.Why + ")"
	}
	fmt.Printf("node %s drained and gone after %v%s\n", pos[0], time.Since(start).Round(time.Millisecond), how)
	return 0
}

// heldError ends the wait on a drain held by persisted values of ended
// jobs (kept), or past its deadline by values whose owners have no room
// (noRoom): the drain goes on, the command stops waiting (exitDrainHeld).
type heldError struct {
	node, kept string
	noRoom     float64
}

func (e *heldError) Error() string {
	if e.kept == "" {
		return fmt.Sprintf("the drain of %s goes on past its deadline but is held: %.0f value(s) have no room on the nodes they go to. "+
			"It moves them as room is made there (delete values), or run pocket node drain %s --lose-overflow to lose them; "+
			"watch it with pocket status", e.node, e.noRoom, e.node)
	}
	return fmt.Sprintf("the drain of %s goes on but is held: it keeps %s, which leaving would destroy. "+
		"It leaves once they are deleted (POCKET_CREDENTIAL=... pocket rm JOB KEY, or pocket rm --all JOB for all of them and any chunks of large values no key names; pocket job credential JOB prints it from the job's token), "+
		"or run pocket node drain %s --discard-persisted to destroy them; watch it with pocket status", e.node, e.kept, e.node)
}

// drainWait is the wait of pocket node drain for a node to leave: until
// limit has passed, or the drain is held (past deadline, or all its other
// data moved) by persisted values of ended jobs it keeps, unless the
// drain discards them.
type drainWait struct {
	node     string
	start    time.Time // when the drain was ordered
	deadline time.Time
	limit    time.Duration
	discard  bool
	overflow bool // the order said --lose-overflow
}

// await polls the status until the node is no longer listed, printing
// its progress whenever it changes (its bytes used and values left once
// it has reported its first drain pass, and the persisted values of ended
// jobs it keeps, with the jobs), and returns how it left (the status's
// retirement of it since the drain began; nil from a controller that
// does not list retirements), or a *heldError when the drain is held. It
// closes mc. Before, a node that died while draining, or whose deadline
// passed with values unmoved, was reported "drained and gone", exit 0 (a
// new user's trial: 17 of 20 values then answered lost).
func (w *drainWait) await(ctx context.Context, mc *metaclient.Client) (*wire.RetiredNode, error) {
	defer mc.Close()
	ctx, cancel := context.WithTimeout(ctx, w.limit)
	defer cancel()
	last := ""
	for {
		st, err := mc.Status(ctx)
		if err != nil {
			return nil, err
		}
		// Its drain's end first: a node restarted while draining is
		// listed again, as a fresh node (before, the wait went on, or
		// read the restarted node's retirement as a drain's success).
		if r := w.retirement(st); r != nil {
			return r, nil
		}
		n, found := findNode(statusView(st), w.node)
		if !found {
			return nil, nil
		}
		line, kept := w.progress(n)
		if line != last {
			fmt.Println(line)
			last = line
		}
		if kept != "" && (n.Metrics[wire.MetricDrainDone] >= 1 || time.Now().After(w.deadline)) {
			return nil, &heldError{node: w.node, kept: kept}
		}
		if room := n.Metrics[wire.MetricDrainNoRoom]; room > 0 && !w.overflow && time.Now().After(w.deadline) {
			return nil, &heldError{node: w.node, noRoom: room}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("node %s still listed: %w", w.node, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// retirement is the status's record of the node's retirement since the
// drain began (a second's slack for clocks), nil when it has none.
func (w *drainWait) retirement(st *wire.ClusterStatus) *wire.RetiredNode {
	for i := range st.Retired {
		if r := &st.Retired[i]; r.Addr == w.node && !r.At.Before(w.start.Add(-time.Second)) {
			return r
		}
	}
	return nil
}

// findNode is the node at addr in v.
func findNode(v statusJSON, addr string) (statusNodeJSON, bool) {
	for _, n := range v.Nodes {
		if n.Addr == addr {
			return n, true
		}
	}
	return statusNodeJSON{}, false
}

// progress is a draining node's progress line and, unless the drain
// discards them, the persisted values of ended jobs it keeps ("" when
// none). Its bytes used are shown once it reported a drain pass (drain
// metrics): before, the figure may be one from before the order or none
// at all (a node registered or restored and not heard from since).
func (w *drainWait) progress(n statusNodeJSON) (line, kept string) {
	_, left := n.Metrics[wire.MetricDrainLeft]
	_, done := n.Metrics[wire.MetricDrainDone]
	switch {
	case left || done:
		line = fmt.Sprintf("  %s: %s used", n.State, units.FormatSize(n.UsedBytes))
		if v, ok := n.Metrics[wire.MetricDrainLeft]; ok {
			line += fmt.Sprintf(", %.0f value(s) left at its last pass", v)
		}
		if v := n.Metrics[wire.MetricDrainNoRoom]; v > 0 {
			line += fmt.Sprintf(", %.0f with no room on the nodes they go to", v)
			if !w.overflow {
				line += " (they hold the drain past its deadline until room is made, or --lose-overflow)"
			}
		}
	default:
		line = fmt.Sprintf("  %s: awaiting the node's first drain report", n.State)
	}
	if note, ok := persistedNote(n); ok && !w.discard {
		kept = note
		line += "; it keeps " + note + ", which hold it when the rest has moved (until deleted, or --discard-persisted)"
	}
	return line, kept
}
