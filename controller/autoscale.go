package controller

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pocketstore/pocket/orchestrator"
	"github.com/pocketstore/pocket/wire"
)

// Autoscaling policy
//
// Once every AutoscaleConfig.Interval the autoscaler computes the cluster's
// utilization over its active nodes, per dimension:
//
//   - network: for each node the larger of its allocated share (the jobs'
//     hint-based Mb/s on it over its bandwidth) and its measured share
//     (max of rx and tx over its bandwidth, averaged over the last Smooth
//     heartbeats), weighted by the node's bandwidth;
//   - capacity, per tier kind: the larger of bytes used and bytes allotted,
//     over the tier's capacity, summed over nodes;
//   - CPU (when UseCPU): the mean busy share of the nodes' cores.
//
// The binding dimension is the highest. Then:
//
//   - fewer active nodes than MinNodes: start the difference;
//   - without per-job scaling (NoJobScaling, Pocket's cluster-wide
//     policy), utilization above High (0.8) and fewer than MaxNodes:
//     start enough nodes to bring it to the band's middle, assuming new
//     nodes like the current ones (at least one), unless a scale-out
//     happened less than Cooldown ago or nodes are still starting. A
//     node's measured load within AllotmentSlack of its allotment counts
//     as the allotment. With per-job scaling there is no such step: a
//     running job is placed already, so a node started for the cluster's
//     utilization would carry none of its load; the per-job policy
//     (elastic.go) grows a pressed job's map and asks for a node when no
//     active one has room (needNode), and new jobs have theirs started
//     before they are placed (reserve.go);
//   - a job that lost a node and whose nodes left cannot carry its
//     allotment, when no running node can join its map (refill.go:
//     refillStarved), has one started, with or without per-job scaling,
//     within MaxNodes and Cooldown;
//   - utilization below Low (0.6), measured figures taken at their peak
//     over the last Smooth heartbeats rather than their mean (a load
//     beyond the hints, a job's without hints, dips for a heartbeat when
//     its clients pause or its map changes: a new user's steady 1,000
//     Mb/s saw 5 adds and 4 drains in 75 s when scale-in read the latest
//     heartbeat alone; allotments keep every registered job's nodes), more than
//     MinNodes, no drain running, nothing changed for Cooldown, no node's
//     latest figures straddling the end of a job on it (its traffic would
//     still count: wait for a heartbeat whose interval began after, at
//     most two intervals), and the rest would stay at or under High
//     without one node: drain as many nodes as leave the rest at the
//     band's middle (at least one), those holding the fewest bytes first
//     (least to move), preferring nodes the orchestrator started (it can
//     stop them), and never a node whose jobs' other nodes would then run
//     over the band's middle (drainSafeLocked: draining it would press
//     them, and their maps would grow again at once), nor one whose
//     values would fill a node taking them past the band's middle of its
//     capacity (drainOverflowLocked), nor a node that
//     keeps persist-after-job values of ended jobs (drain.go: leaving
//     would destroy them; the autoscaler logs once which nodes it passes
//     over, and a drain held for such values does not count as running).
//     Each drain retires its node and the orchestrator stops it.
//
// Besides the periodic evaluation, a job registering with a bandwidth or
// capacity need (its hints, or without them its name's profile) that the
// active nodes' room under High cannot carry first has the nodes it needs
// started, and a need that MaxNodes nodes could not serve is refused
// before any start (reserve.go).
//
// Every decision, and every change in why a needed one is held back, is
// logged with its figures.

// Action is what a decision does.
type Action string

// Actions.
const (
	ActionNone   Action = "none"
	ActionAdd    Action = "add"
	ActionRemove Action = "remove"
	// ActionGrowJob adds a node to one running job's map (elastic.go).
	ActionGrowJob Action = "grow-job"
	// ActionShrinkJob takes a node out of one running job's map.
	ActionShrinkJob Action = "shrink-job"
)

// AutoscaleConfig configures the autoscaler. Zero fields take defaults.
type AutoscaleConfig struct {
	// Orchestrator starts and stops nodes. Required.
	Orchestrator orchestrator.Orchestrator
	// Spec is the template of a new node; Controller defaults to Addr.
	Spec orchestrator.NodeSpec
	// Addr is the controller's address, given to new nodes.
	Addr string

	High, Low          float64       // band (0.8, 0.6)
	MinNodes, MaxNodes int           // node count bounds (1, 8)
	Cooldown           time.Duration // between changes (10 s)
	Interval           time.Duration // evaluation period (1 s)
	Smooth             int           // heartbeats averaged for measured figures (3)
	// LowFor is how many heartbeats in a row a load must stay under Low,
	// each of them (their peak), before scale-in or a job's shrink acts
	// on it (3 x Smooth: 9). A load that pauses for fewer (clients
	// between bursts, a map change's stall) drains nothing: a new user's
	// steady load with 1.5-2 s pauses every 12-15 s, and a hostile one of
	// 2 s on, 4 s off, went up and down with a 3-heartbeat window.
	LowFor int
	// UseCPU counts CPU as a dimension. Off for nodes that share one
	// host's cores (pocket up): each reports the host's CPU, so one busy
	// node would make them all look busy.
	UseCPU bool
	// DrainDeadline bounds a scale-in drain (DefaultDrainDeadline).
	DrainDeadline time.Duration
	// StartTimeout bounds starting a node and its registration (10 s).
	StartTimeout time.Duration
	// Now is the clock (time.Now); tests drive a fake one.
	Now func() time.Time
	// JobCooldown is the least time between two changes of one job's map,
	// and before the first (5 s).
	JobCooldown time.Duration
	// NoJobScaling keeps every job's map as it was sized (elastic.go).
	NoJobScaling bool
}

func (a *AutoscaleConfig) withDefaults() error {
	if a.Orchestrator == nil {
		return fmt.Errorf("controller: autoscaler needs an orchestrator")
	}
	if a.High <= 0 {
		a.High = 0.8
	}
	if a.Low <= 0 {
		a.Low = 0.6
	}
	if a.Low >= a.High {
		return fmt.Errorf("controller: autoscale band low %.2f must be under high %.2f", a.Low, a.High)
	}
	if a.MinNodes <= 0 {
		a.MinNodes = 1
	}
	if a.MaxNodes <= 0 {
		a.MaxNodes = 8
	}
	if a.MaxNodes < a.MinNodes {
		return fmt.Errorf("controller: max nodes %d under min nodes %d", a.MaxNodes, a.MinNodes)
	}
	if a.Cooldown <= 0 {
		a.Cooldown = 10 * time.Second
	}
	if a.Interval <= 0 {
		a.Interval = time.Second
	}
	if a.JobCooldown <= 0 {
		a.JobCooldown = 5 * time.Second
	}
	if a.Smooth <= 0 {
		a.Smooth = 3
	}
	if a.LowFor <= 0 {
		a.LowFor = 3 * a.Smooth
	}
	if a.DrainDeadline <= 0 {
		a.DrainDeadline = DefaultDrainDeadline
	}
	if a.StartTimeout <= 0 {
		a.StartTimeout = 10 * time.Second
	}
	if a.Now == nil {
		a.Now = time.Now
	}
	if a.Spec.Controller == "" {
		a.Spec.Controller = a.Addr
	}
	return nil
}

// Decision is one autoscaling decision.
type Decision struct {
	Job    string // the job whose map changes (grow-job, shrink-job)
	At     time.Time
	Action Action
	Count  int      // nodes to add
	Drain  []string // nodes to drain
	Nodes  int      // active nodes when decided
	Util   float64
	Dim    string // binding dimension
	Reason string
}

// Utilization is the cluster's utilization per dimension (fractions).
type Utilization struct {
	Net    float64
	CPU    float64
	Cap    map[string]float64 // by tier name
	Nodes  int                // active nodes
	Mbps   float64            // bandwidth of the active nodes
	Load   float64            // Mb/s counted against it: per node max(allocated, measured)
	Max    float64            // the binding dimension's figure
	Dim    string             // its name: "network", "cpu", "capacity dram", ...
	Detail string             // how Max is counted ("": the network's, from the shares below)
	// allocShare and measShare are the network's allocated and measured
	// shares of Mbps, cluster-wide (fractions).
	allocShare, measShare float64
	// Settling counts the nodes whose latest figures straddle the end of
	// a job placed on them (their measured traffic still has some of it).
	Settling int
	// Keeping names the active nodes that keep persist-after-job values
	// of ended jobs, which scale-in never drains (drain.go), sorted.
	Keeping []string
	// Blocked counts the other active nodes scale-in passes over, by why
	// (counted only when the caller asks for victims).
	Blocked Blocked
}

// Blocked counts the active nodes scale-in cannot drain, by why. Mid is
// the fraction the checks hold the other nodes under (the band's middle).
type Blocked struct {
	Mid       float64
	Changing  int // joining or leaving a job's map, or taking values of one that changes (elastic.go, receivingLocked)
	Bandwidth int // a job's other nodes would run over Mid of their bandwidth (drainSafeLocked)
	Room      int // its values would fill a receiving tier past Mid (drainOverflowLocked)
}

// String says why no node can be drained, as the autoscaler's hold log
// gives it: "2 would put a job's other nodes over 70% of their
// bandwidth, 1 ...". It is empty when no node was passed over.
func (b Blocked) String() string {
	var parts []string
	add := func(k int, what string) {
		if k > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", k, what))
		}
	}
	add(b.Bandwidth, fmt.Sprintf("would put a job's other nodes over %.0f%% of their bandwidth", 100*b.Mid))
	add(b.Room, fmt.Sprintf("hold values their jobs' other nodes have no room for under %.0f%% of a tier", 100*b.Mid))
	add(b.Changing, "are joining or leaving a job's map, or taking values of one that changes")
	return strings.Join(parts, ", ")
}

// figures names the binding dimension with its figure and detail, as
// decisions and holds give them beside bound (a fraction: see pctBeside).
func (u Utilization) figures(bound float64) string {
	detail := u.Detail
	if detail == "" { // the network's: its shares sit beside the bound too
		detail = fmt.Sprintf("per node the larger of allocated and measured; allocated %s, measured %s of %.0f Mb/s",
			pctBeside(u.allocShare, bound), pctBeside(u.measShare, bound), u.Mbps)
	}
	return fmt.Sprintf("%s %s (%s)", u.Dim, pctBeside(u.Max, bound), detail)
}

// cannotDrain says why scale-in found no node to drain: the nodes that
// keep persisted values and those Blocked counts.
func (u Utilization) cannotDrain() string {
	var why []string
	if k := len(u.Keeping); k > 0 {
		why = append(why, fmt.Sprintf("%d keep persisted values of ended jobs (delete them, or drain with --discard-persisted)", k))
	}
	if b := u.Blocked.String(); b != "" {
		why = append(why, b)
	}
	if len(why) == 0 {
		return "no active node"
	}
	return strings.Join(why, "; ")
}

// pct formats a fraction as a whole percentage: 0.7 is "70%".
func pct(f float64) string { return strconv.FormatFloat(100*f, 'f', 0, 64) + "%" }

// pctBeside formats the fraction v as a percentage to be read beside
// bound: whole, unless rounding would make v read as the bound when it is
// not (0.596 beside 0.6 is "59.6%", not "60%"), with up to 3 decimals.
func pctBeside(v, bound float64) string {
	for prec := 0; prec < 3; prec++ {
		s := strconv.FormatFloat(100*v, 'f', prec, 64)
		if v == bound || s != strconv.FormatFloat(100*bound, 'f', prec, 64) {
			return s + "%"
		}
	}
	return strconv.FormatFloat(100*v, 'f', 3, 64) + "%"
}

// AllotmentSlack is how far above its allotment a node's measured load
// still counts as the allotment in the cluster's scale-out (a ratio): the
// per-job policy grows a job's map only for traffic beyond 1.1x its
// allotment too (elastic.go).
const AllotmentSlack = 1.1

// Autoscaler keeps the cluster's utilization inside a band by starting
// nodes and draining them. Create it with Controller.StartAutoscaler.
type Autoscaler struct {
	c   *Controller
	cfg AutoscaleConfig

	mu         sync.Mutex // guards the fields below
	lastOut    time.Time
	lastChange time.Time
	starting   int
	seq        uint64              // node starts begun, which number them
	inflight   map[uint64]struct{} // the numbers of the starts not ended
	ended      chan struct{}       // closed, and replaced, whenever a start ends
	started    map[string]string   // node address -> orchestrator id
	decisions  []Decision
	counts     map[Action]int
	holds      int    // evaluations that held a needed change back
	evals      int    // evaluations (Step calls)
	held       string // last logged reason for holding back
	passed     string // nodes scale-in last logged passing over (Utilization.Keeping)
	util       Utilization
	starts     []NodeStart
	settleFrom time.Time // when scale-in began waiting for Settling nodes

	stop chan struct{}
	wg   sync.WaitGroup
}

// maxDecisions bounds the kept decision log.
const maxDecisions = 4096

// StartAutoscaler starts the autoscaler's loop; Controller.Close stops it.
// Nodes the orchestrator already runs count as started by it.
func (c *Controller) StartAutoscaler(cfg AutoscaleConfig) (*Autoscaler, error) {
	if err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	a := &Autoscaler{c: c, cfg: cfg, started: map[string]string{}, counts: map[Action]int{}, stop: make(chan struct{}), ended: make(chan struct{}), inflight: map[uint64]struct{}{}}
	for _, n := range cfg.Orchestrator.Nodes() {
		a.started[n.Addr] = n.ID
	}
	if !c.auto.CompareAndSwap(nil, a) {
		return nil, fmt.Errorf("controller: an autoscaler is already running")
	}
	c.OnRetire(a.onRetire)
	a.wg.Add(1)
	go a.loop()
	c.srv.goroutine(func() {
		<-c.srv.done
		a.Stop()
	})
	return a, nil
}

func (c *Controller) scaler() *Autoscaler { return c.auto.Load() }

// Stop ends the loop and waits for node starts in flight.
func (a *Autoscaler) Stop() {
	a.mu.Lock()
	select {
	case <-a.stop:
	default:
		close(a.stop)
	}
	a.mu.Unlock()
	a.wg.Wait()
}

func (a *Autoscaler) loop() {
	defer a.wg.Done()
	t := time.NewTicker(a.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
			a.Step()
		}
	}
}

// Step evaluates the policy once and carries out its decision: node starts
// run in the background; a drain starts at once. The loop calls it every
// Interval; tests call it with a fake clock.
//
// While nodes restored from the controller's state have not been heard
// from (after a restart: each is heard within a heartbeat, or marked dead
// after DeadAfter and the restore grace), it decides nothing: their
// figures are the earlier run's, and a node that stopped with that run
// (pocket up's own, restarted on its data directory) would count as
// capacity, draining live nodes and starting others once it is marked
// dead.
func (a *Autoscaler) Step() Decision {
	now := a.cfg.Now()
	if n := a.c.restoredUnheard(); n > 0 {
		a.mu.Lock()
		a.evals++
		a.hold(fmt.Sprintf("(%d node(s) restored from the state) await their first heartbeat", n))
		a.mu.Unlock()
		return Decision{At: now, Action: ActionNone}
	}
	var jobChanged bool
	need := "" // why a job needs a node no active node can give
	if !a.cfg.NoJobScaling {
		jobChanged, need = a.jobsStep(now)
	}
	if need == "" && a.c.refillStarved(time.Now()) { // the controller's sweeps run on its own clock
		need = "a job that lost a node needs another, and no active node can join its map"
	}
	mid := (a.cfg.High + a.cfg.Low) / 2
	u, _, _ := a.c.utilization(a.cfg.Smooth, false, a.cfg.UseCPU, 0)
	uPeak, victims, draining := a.c.utilization(a.cfg.LowFor, true, a.cfg.UseCPU, mid)
	a.mu.Lock()
	a.util = u
	a.evals++
	a.passOverLocked(uPeak.Keeping)
	d := a.decideLocked(now, u, uPeak, victims, draining)
	var first uint64 // the number of the first start an add begins
	if jobChanged && (d.Action == ActionRemove || (d.Action == ActionAdd && d.Nodes+a.starting >= a.cfg.MinNodes)) {
		// A job's map changed on this load: see what it does first.
		a.hold(fmt.Sprintf("%s %.0f%%: a job's map changed in this evaluation", d.Dim, 100*d.Util))
		d.Action, d.Count, d.Drain, d.Reason = ActionNone, 0, nil, ""
	}
	if d.Action == ActionNone && need != "" && !jobChanged && a.starting == 0 && d.Nodes < a.cfg.MaxNodes &&
		now.Sub(a.lastOut) >= a.cfg.Cooldown {
		d.Action, d.Count, d.Reason = ActionAdd, 1, need
	}
	switch d.Action {
	case ActionAdd:
		a.lastOut, a.lastChange = now, now
		first = a.beginLocked(d.Count)
	case ActionRemove:
		a.lastChange = now
	}
	if d.Action != ActionNone {
		a.counts[d.Action]++
		a.record(d)
	}
	a.mu.Unlock()
	switch d.Action {
	case ActionAdd:
		a.log().Info("autoscale: add", "count", d.Count, "from", d.Nodes, "to", d.Nodes+d.Count, "reason", d.Reason)
		for i := range d.Count {
			a.wg.Add(1)
			go a.startNode(first + uint64(i))
		}
	case ActionRemove:
		a.log().Info("autoscale: drain", "nodes", strings.Join(d.Drain, ","), "from", d.Nodes, "to", d.Nodes-len(d.Drain), "reason", d.Reason)
		for _, addr := range d.Drain {
			// One at a time: each drain's room is checked beside the
			// drains begun before it (a hostile review: two victims, each
			// fitting alone, both adopted onto one node and overflowed it).
			if _, err := a.c.DrainWith(addr, DrainOptions{Deadline: a.cfg.DrainDeadline, fill: (a.cfg.High + a.cfg.Low) / 2}); err != nil {
				a.log().Warn("autoscale: drain", "node", addr, "err", err)
			}
		}
	}
	return d
}

// jobsStep runs the per-job policy (elastic.go) before the cluster's: it
// records the maps it changed (a change also restarts the cluster's
// cool-down, so scale-in waits to see what the change did) and reports
// whether it changed any, and why a job needs a node that no active node
// has room for ("" when none does).
func (a *Autoscaler) jobsStep(now time.Time) (changed bool, need string) {
	ds, needNode := a.jobStep(now)
	if needNode {
		need = "a job's nodes are over the band and no active node has room for it"
	}
	a.mu.Lock()
	for _, d := range ds {
		a.counts[d.Action]++
		a.record(d)
	}
	if len(ds) > 0 {
		a.lastChange = now
	}
	a.mu.Unlock()
	for _, d := range ds {
		a.log().Info("autoscale: "+string(d.Action), "job", d.Job, "reason", d.Reason)
	}
	return len(ds) > 0, need
}

// record appends a decision to the bounded log; a.mu is held.
func (a *Autoscaler) record(d Decision) {
	if len(a.decisions) == maxDecisions {
		a.decisions = append(a.decisions[:0], a.decisions[maxDecisions/2:]...)
	}
	a.decisions = append(a.decisions, d)
}

// victim is a node scale-in could drain.
type victim struct {
	addr  string
	bytes int64
	alloc float64
}

// decideLocked is the policy (see the comment at the top of the file). u
// has the measured figures averaged over Smooth heartbeats, uPeak their
// peaks over the same heartbeats: scale-out waits for a load to last,
// scale-in for a load low in each of them.
func (a *Autoscaler) decideLocked(now time.Time, u, uPeak Utilization, victims []victim, draining int) Decision {
	p := &a.cfg
	n := u.Nodes
	d := Decision{At: now, Action: ActionNone, Nodes: n, Util: u.Max, Dim: u.Dim}
	if uPeak.Settling == 0 {
		a.settleFrom = time.Time{}
	}
	if n+a.starting < p.MinNodes {
		d.Action, d.Count = ActionAdd, p.MinNodes-n-a.starting
		d.Reason = fmt.Sprintf("%d active node(s), %d starting, under the minimum %d", n, a.starting, p.MinNodes)
		return d
	}
	switch {
	case p.NoJobScaling && u.Max > p.High:
		figures := u.figures(p.High)
		switch {
		case n+a.starting >= p.MaxNodes:
			a.hold(fmt.Sprintf("%s over %.0f%% but at the maximum of %d nodes", figures, 100*p.High, p.MaxNodes))
		case a.starting > 0:
			a.hold(fmt.Sprintf("%s over %.0f%%; waiting for %d node(s) starting", figures, 100*p.High, a.starting))
		case now.Sub(a.lastOut) < p.Cooldown:
			a.hold(fmt.Sprintf("%s over %.0f%%; in cool-down for %v", figures, 100*p.High, (p.Cooldown - now.Sub(a.lastOut)).Round(time.Second)))
		default:
			target := (p.High + p.Low) / 2
			want := int(math.Ceil(u.Max * float64(max(n, 1)) / target))
			d.Action, d.Count = ActionAdd, min(max(want-n, 1), p.MaxNodes-n)
			d.Reason = fmt.Sprintf("%s over %.0f%%", figures, 100*p.High)
			a.held = ""
		}
	case uPeak.Max < p.Low && n > p.MinNodes:
		u = uPeak
		d.Util, d.Dim = u.Max, u.Dim
		figures := u.figures(p.Low)
		projected := u.Max * float64(n) / float64(n-1)
		switch {
		case draining > 0 || a.starting > 0:
			a.hold(fmt.Sprintf("%s under %.0f%%; waiting for %d drain(s) and %d start(s)", figures, 100*p.Low, draining, a.starting))
		case now.Sub(a.lastChange) < p.Cooldown:
			a.hold(fmt.Sprintf("%s under %.0f%%; in cool-down", figures, 100*p.Low))
		case a.settling(now, u.Settling):
			a.hold(fmt.Sprintf("%s under %.0f%%; waiting for heartbeats after a job ended on %d node(s)", figures, 100*p.Low, u.Settling))
		case projected > p.High:
			a.hold(fmt.Sprintf("%s under %.0f%% but %d node(s) would run at %s", figures, 100*p.Low, n-1, pctBeside(projected, p.High)))
		case len(victims) == 0:
			a.hold(fmt.Sprintf("%s under %s but no node can be drained: %s", figures, pct(p.Low), uPeak.cannotDrain()))
		default:
			// As many as leave the rest at the band's middle, at least one.
			target := (p.High + p.Low) / 2
			keep := max(p.MinNodes, int(math.Ceil(u.Max*float64(n)/target)), 1)
			k := min(max(n-keep, 1), len(victims))
			d.Action, d.Drain = ActionRemove, a.pickVictims(victims, k)
			d.Reason = fmt.Sprintf("%s under %.0f%%; %d node(s) will run at %s", figures, 100*p.Low, n-k, pctBeside(u.Max*float64(n)/float64(n-k), p.High))
			a.held = ""
		}
	default:
		a.held = ""
	}
	return d
}

// passOverLocked logs, once per set, the nodes scale-in passes over
// because they keep persisted values of ended jobs.
func (a *Autoscaler) passOverLocked(keeping []string) {
	set := strings.Join(keeping, ",")
	if set == a.passed {
		return
	}
	a.passed = set
	if set != "" {
		a.log().Info("autoscale: scale-in passes over nodes that keep persist-after-job values of ended jobs "+
			"(leaving would destroy them): delete the values, or drain a node with --discard-persisted", "nodes", set)
	}
}

// settling reports whether scale-in waits for k nodes whose figures
// straddle a job's end (Utilization.Settling): for two heartbeat
// intervals at most from when it began to wait, so that jobs ending one
// after another cannot hold it back for ever.
func (a *Autoscaler) settling(now time.Time, k int) bool {
	if k == 0 {
		return false
	}
	if a.settleFrom.IsZero() {
		a.settleFrom = now
	}
	return now.Sub(a.settleFrom) < 2*a.c.cfg.HeartbeatInterval
}

// hold counts an evaluation that holds a needed change back, and logs
// why, once per distinct reason.
func (a *Autoscaler) hold(why string) {
	a.holds++
	// Ignore the changing figures, the utilization's and those in the
	// reason ("2 nodes would run at 109%"): log when the kind of reason
	// changes. Before, a figure in the reason logged the hold again at
	// every evaluation it changed.
	key := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return -1
		}
		return r
	}, why[indexAfterFigures(why):])
	if key == a.held {
		return
	}
	a.held = key
	a.log().Info("autoscale: hold", "why", why)
}

// indexAfterFigures returns where the reason follows the figures: the
// text after the closing parenthesis of the detail.
func indexAfterFigures(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == ')' {
			return i + 1
		}
	}
	return 0
}

// pickVictims picks k nodes to drain: nodes the orchestrator started
// first (it can stop them), then the fewest bytes (least to move), then
// the least allocation, then by address.
func (a *Autoscaler) pickVictims(vs []victim, k int) []string {
	sort.Slice(vs, func(i, j int) bool {
		_, oi := a.started[vs[i].addr]
		_, oj := a.started[vs[j].addr]
		if oi != oj {
			return oi
		}
		if vs[i].bytes != vs[j].bytes {
			return vs[i].bytes < vs[j].bytes
		}
		if vs[i].alloc != vs[j].alloc {
			return vs[i].alloc < vs[j].alloc
		}
		return vs[i].addr < vs[j].addr
	})
	out := make([]string, k)
	for i := range out {
		out[i] = vs[i].addr
	}
	return out
}

// beginLocked counts k node starts about to begin and returns the number
// of the first; the others follow it.
func (a *Autoscaler) beginLocked(k int) uint64 {
	first := a.seq + 1
	for range k {
		a.seq++
		a.inflight[a.seq] = struct{}{}
	}
	a.starting += k
	return first
}

// startNode starts one node, start number id (beginLocked), and waits for
// it to register; the error says why it did not (also logged).
func (a *Autoscaler) startNode(id uint64) error {
	defer a.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.StartTimeout)
	defer cancel()
	go func() {
		select {
		case <-a.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	t0 := time.Now()
	n, err := a.cfg.Orchestrator.Start(ctx, a.cfg.Spec)
	if err != nil {
		a.log().Warn("autoscale: start node", "err", err)
		a.doneStarting(id)
		return fmt.Errorf("start: %w", err)
	}
	serving := time.Since(t0)
	a.c.ForgetRetired(n.Addr) // a retired node there has ended: this one serves at its address
	a.mu.Lock()
	a.started[n.Addr] = n.ID
	a.mu.Unlock()
	err = a.c.awaitActive(ctx, n.Addr)
	a.doneStarting(id)
	if err != nil {
		a.log().Warn("autoscale: node started but did not register", "node", n.Addr, "err", err)
		return fmt.Errorf("node %s started but did not register: %w", n.Addr, err)
	}
	st := NodeStart{Addr: n.Addr, Serving: serving, Registered: time.Since(t0)}
	a.mu.Lock()
	if len(a.starts) < maxDecisions {
		a.starts = append(a.starts, st)
	}
	a.mu.Unlock()
	a.log().Info("autoscale: node started", "node", n.Addr, "serving_after", st.Serving.Round(time.Millisecond),
		"registered_after", st.Registered.Round(time.Millisecond))
	return nil
}

// NodeStart is how long a node the autoscaler started took: until it
// accepted connections (Orchestrator.Start returned), and until the
// controller listed it active.
type NodeStart struct {
	Addr       string
	Serving    time.Duration
	Registered time.Duration
}

// Starts returns the node starts that succeeded, oldest first.
func (a *Autoscaler) Starts() []NodeStart {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]NodeStart(nil), a.starts...)
}

func (a *Autoscaler) doneStarting(id uint64) {
	a.mu.Lock()
	a.starting--
	delete(a.inflight, id)
	close(a.ended)
	a.ended = make(chan struct{})
	a.mu.Unlock()
}

// awaitStarts waits until every node start numbered up to mark has ended
// (later ones are not waited for), until deadline (a start fails by
// itself StartTimeout after it began) or until the autoscaler stops.
func (a *Autoscaler) awaitStarts(mark uint64, deadline time.Time) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		a.mu.Lock()
		if !a.startedByLocked(mark) {
			a.mu.Unlock()
			return
		}
		ended := a.ended
		a.mu.Unlock()
		select {
		case <-ended:
		case <-a.stop:
			return
		case <-timer.C:
			return
		}
	}
}

// startedByLocked reports whether a start numbered up to mark is in
// flight.
func (a *Autoscaler) startedByLocked(mark uint64) bool {
	for id := range a.inflight {
		if id <= mark {
			return true
		}
	}
	return false
}

// awaitActive polls until addr is an active node or ctx ends.
func (c *Controller) awaitActive(ctx context.Context, addr string) error {
	for {
		c.mu.Lock()
		n, ok := c.nodes[addr]
		active := ok && n.state == wire.NodeActive
		c.mu.Unlock()
		if active {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// onRetire stops a retired node the orchestrator started.
func (a *Autoscaler) onRetire(addr, why string) {
	a.mu.Lock()
	id, ok := a.started[addr]
	delete(a.started, addr)
	a.mu.Unlock()
	if !ok {
		a.log().Info("autoscale: node retired; not started here, so not stopped", "node", addr, "why", why)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := a.cfg.Orchestrator.Stop(ctx, id); err != nil {
		a.log().Warn("autoscale: stop node", "node", addr, "id", id, "err", err)
		return
	}
	a.c.ForgetRetired(addr)
	a.log().Info("autoscale: node stopped", "node", addr)
}

// Decisions returns the decisions taken so far (not the holds), oldest
// first.
func (a *Autoscaler) Decisions() []Decision {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Decision(nil), a.decisions...)
}

// Utilization returns the figures of the latest evaluation.
func (a *Autoscaler) Utilization() Utilization {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.util
}

func sortedKeys(m map[string]float64) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// utilization computes the cluster's figures over its active nodes, each
// node's measured ones over its last smooth heartbeats (their mean, or
// with peak their highest), the nodes scale-in could drain (none whose
// jobs' other nodes would then run over mid, on the network or on
// capacity: drainSafeLocked, drainOverflowLocked; none listed when mid is
// 0), and the number of drains running.
func (c *Controller) utilization(smooth int, peak, useCPU bool, mid float64) (Utilization, []victim, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	allocMbps, _ := c.allocationsLocked()
	u := Utilization{Cap: map[string]float64{}, Blocked: Blocked{Mid: mid}}
	var bwSum, netSum, allocSum, measSum, cpuSum float64
	capUsed, capAll := map[uint8]float64{}, map[uint8]float64{}
	var victims []victim
	draining := 0
	changing := map[string]bool{} // joining or leaving a job's map (elastic.go)
	for j := range c.moving {
		if j.move != nil {
			changing[j.move.addr] = true
		}
	}
	for _, n := range c.nodes {
		if n.state == wire.NodeDraining && (n.drain == nil || !n.drain.held && !n.drain.roomHeld) {
			draining++ // a drain held for persisted values, or for room, waits for an operator
		}
		if n.state != wire.NodeActive {
			continue
		}
		u.Nodes++
		bw := c.nodeMbps(n)
		alloc := allocMbps[n.addr] / bw
		meas, cpu := max(n.rx, n.tx)/bw, n.cpu/100
		if h := n.hist.last(smooth); len(h) > 0 {
			meas, cpu = c.measuredLocked(n, smooth), cpuOf(h, peak)
			if peak {
				meas = c.peakLocked(n, smooth) // ended jobs' traffic left out
			}
		}
		if straddles(n.hist.last(2), alloc) {
			u.Settling++
		}
		bwSum += bw
		netSum += counted(alloc, meas) * bw
		allocSum += alloc * bw
		measSum += meas * bw
		cpuSum += cpu
		var used int64
		for i := range n.tiers {
			t := &n.tiers[i]
			used += t.UsedBytes
			capUsed[t.Kind] += float64(c.heldBytesLocked(n, t))
			capAll[t.Kind] += float64(t.CapacityBytes)
		}
		switch {
		case n.persisted.keeps():
			u.Keeping = append(u.Keeping, n.addr)
		case mid <= 0:
		case changing[n.addr] || receiving(c.receivingLocked(n.addr)):
			u.Blocked.Changing++
		case !c.drainSafeLocked(n.addr, mid, smooth):
			u.Blocked.Bandwidth++
		case c.drainOverflowLocked(n.addr, mid) != "":
			u.Blocked.Room++
		default:
			victims = append(victims, victim{addr: n.addr, bytes: used, alloc: allocMbps[n.addr]})
		}
	}
	sort.Strings(u.Keeping)
	if u.Nodes == 0 {
		u.Dim = "network"
		return u, nil, draining
	}
	u.Net, u.Mbps, u.Load = netSum/bwSum, bwSum, netSum
	u.CPU = cpuSum / float64(u.Nodes)
	u.Max, u.Dim = u.Net, "network"
	// The network figure counts each node at the larger of its two shares,
	// so it can exceed both cluster-wide ones.
	u.allocShare, u.measShare = allocSum/bwSum, measSum/bwSum // the detail, in figures
	u.Detail = ""
	if useCPU && u.CPU > u.Max {
		u.Max, u.Dim = u.CPU, "cpu"
		u.Detail = fmt.Sprintf("mean busy share of %d nodes' cores", u.Nodes)
	}
	for k, all := range capAll {
		if all <= 0 {
			continue
		}
		f := capUsed[k] / all
		u.Cap[kindName(k)] = f
		if f > u.Max {
			u.Max, u.Dim = f, "capacity "+kindName(k)
			u.Detail = fmt.Sprintf("per node the larger of bytes used and allotted, of %d bytes", int64(all))
		}
	}
	return u, victims, draining
}

// cpuOf is the CPU share of a node's samples h (not empty): their mean,
// or with peak their highest.
func cpuOf(h []Sample, peak bool) (cpu float64) {
	for _, s := range h {
		if peak {
			cpu = max(cpu, s.CPU)
			continue
		}
		cpu += s.CPU / float64(len(h))
	}
	return cpu
}

// counted is a node's network figure for the cluster's policy: the larger
// of its allocated and measured shares, except that a measured share
// within AllotmentSlack of the allotment counts as the allotment.
func counted(alloc, meas float64) float64 {
	if meas <= alloc*AllotmentSlack {
		return alloc
	}
	return meas
}

// straddles reports whether a node's latest samples (oldest first) were
// taken while it carried more allotment than alloc, its allotment now: a
// job on it has ended since, and its measured figure still holds some of
// that job's traffic until a heartbeat whose whole interval came after.
func straddles(last []Sample, alloc float64) bool {
	for _, s := range last {
		if s.NetAlloc > alloc+1e-9 {
			return true
		}
	}
	return false
}

// drainSafeSmooth is how many heartbeats the status averages a job's
// figures over (the autoscaler's default Smooth).
const drainSafeSmooth = 3

// drainSafeLocked reports whether draining the node at addr leaves every
// job on it within limit (a fraction) on its other nodes (dropSafeLocked:
// the job's own traffic there, at its peak over the last smooth
// heartbeats, spread over them).
func (c *Controller) drainSafeLocked(addr string, limit float64, smooth int) bool {
	l := c.loads[addr]
	if l == nil {
		return true
	}
	for j := range l.jobs {
		if !c.dropSafeLocked(j, addr, limit, smooth) {
			return false
		}
	}
	return true
}

// log is the controller's logger.
func (a *Autoscaler) log() *slog.Logger { return a.c.cfg.Logger }
