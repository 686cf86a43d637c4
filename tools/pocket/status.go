package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/internal/pki"
	"github.com/pocketstore/pocket/internal/units"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

func init() {
	register("status", "", "show the cluster's nodes, tiers, capacity, use and jobs", runStatus)
	helpMore["status"] = statusHelp
}

// statusHelp explains the tables of pocket status.
const statusHelp = `Nodes: USED is each tier's bytes as the node last reported them ("-" for a
dead node, whose values went with it, and for one not heard from since the
controller started); TIER Mb/s the tier's bandwidth as the node measured it;
RX/TX its traffic in its latest heartbeat (a second's); CPU the busy share of its host's CPUs, averaged over them
(the whole host's: other processes on it count, and nodes sharing a host
show the same figure); JOBS the jobs placed on it. Lines below the table say what
a node keeps of ended jobs (persist-after-job values, with the jobs' ids),
how a drain goes, and the block devices' p99 latency, one line per node.

Jobs: ALLOC Mb/s and ALLOC SIZE are the job's allotment, what it asked for
(its hints, else its profile's or Pocket's default size; "-": no size
allotted, its values use its nodes' free capacity); USED its own traffic,
averaged over its nodes' last heartbeats (the autoscaler's smoothing, 3 by
default: it lags the nodes' RX/TX, which are the latest one's), and its
bytes ("~": values are moving, or have moved, between its nodes and not every node has reported since; "?": a node of its
map is dead, and what it holds is not counted; "!": more than its ALLOC
SIZE, which reserves and does not limit); COST $/h its allotment, or its
use where larger (USED Mb/s up to what its nodes are rated for, USED
SIZE; bandwidth and bytes each), at
the controller's prices (its status reply carries them; for a controller
that does not send them, at --prices and --price-*, else the default
table, with a note on stderr; price flags given to a controller that sends
its prices are not used, with a warning on stderr);
MAP the nodes of its map that are not plain active members, with their
state: "draining" (leaving the cluster, or only this job's map, its values
moving to the job's other nodes), "joining" (new in the map, its values
still arriving) or "dead"; "-" when every node of its map is active.
Lines below say when the jobs' allotments oversubscribe a tier, which jobs
then get less, and which jobs' nodes hold less than their ALLOC SIZE (a job
that lost a node: its puts past that answer "tier full" until a node joins
its map, a running node outside it or, about 30 s after it came back and
dropped the job's data, the lost node itself).

Allotted per client (shown when the controller has --max-bytes-per-client
or --max-mbps-per-client, or when more than one client holds jobs): what
each client's live jobs are allotted together, and what its ended jobs'
persist-after-job values hold (PERSISTED, which counts against the byte
quota until deleted), against the quota per client, the 100 clients
holding the most. STORED is what the client stores, its live jobs' USED
SIZE and PERSISTED; marked ! past the byte quota, when the nodes refuse
its jobs' puts until it stores at most the quota. A client is "tenant NAME" over
TLS (its certificate's tenant), else "client ADDR"; "operator ADDR" is the
operator's certificate, which no quota limits.

--json prints one object with every field always present (lists [] when
empty); a failing status prints nothing on stdout, its error on stderr, and
exits 1.
`

// statusJSON is the --json form of `pocket status`. Every field is
// always there: lists are [] and maps {} when empty, never null.
// JobCount and NodeCount are the cluster's; Jobs lists the first jobs
// only (the controller's StatusJobs, 100) unless --jobs pages through all.
type statusJSON struct {
	// Controller is the address of the controller that answered: the
	// active one, among several on etcd.
	Controller string           `json:"controller"`
	NodeCount  uint32           `json:"node_count"`
	JobCount   uint64           `json:"job_count"`
	Nodes      []statusNodeJSON `json:"nodes"`
	Jobs       []statusJobJSON  `json:"jobs"`
	// AutoscaleMaxNodes is the controller's autoscaler's largest node
	// count; 0: the controller does not autoscale.
	AutoscaleMaxNodes uint32 `json:"autoscale_max_nodes"`
	// Clients is what each client's live jobs are allotted together, the
	// most first (at most 100; a client is "tenant NAME" over TLS, else
	// "client ADDR"); Quota the controller's allotment quota per client
	// (0: none).
	Clients []clientHoldJSON `json:"clients"`
	Quota   clientQuotaJSON  `json:"quota"`
	// Allotments are the listed jobs' allotments per tier against the
	// capacity of the live nodes with the tier (tierAllotJSON), one entry
	// per tier a listed job uses.
	Allotments []tierAllotJSON `json:"allotments"`
	// Prices is the price table the jobs' costs are at (statusPrices).
	Prices pricesJSON `json:"prices"`
	// Network is the listed jobs' bandwidth allotments, every tier's,
	// against the live nodes' bandwidth, each node counted once: a node's
	// tiers share its network (the controller counts a node's bandwidth as
	// its fastest tier's), so a node of two tiers is in two Allotments
	// entries with its whole bandwidth, and only this entry tells whether
	// the cluster's bandwidth is oversubscribed.
	Network networkAllotJSON `json:"network"`
}

type statusNodeJSON struct {
	Addr  string `json:"addr"`
	State string `json:"state"`
	// UsedBytes (and the tiers' used_bytes) is the node's latest report.
	// For a dead node it is the last report before it went silent, kept
	// for the record: its values are gone with it (no job's used_bytes
	// counts them), and the plain status shows "-".
	UsedBytes     int64            `json:"used_bytes"`
	CapacityBytes int64            `json:"capacity_bytes"`
	Tiers         []statusTierJSON `json:"tiers"`
	RxMbps        float64          `json:"rx_mbps"`
	TxMbps        float64          `json:"tx_mbps"`
	CPUPercent    float64          `json:"cpu_percent"`
	Cores         uint32           `json:"cores"`
	LastSeenMs    int64            `json:"last_seen_ms"`
	// UnheardSinceRestart: the controller read the node from its state
	// when it (re)started and has not heard from it since
	// (wire.NodeStatus.Restored); LastSeenMs is 0 then and says nothing.
	// AwaitingFirstHeartbeat: such a node not marked dead yet (one never
	// heard from within the controller's grace is dead, not awaiting).
	UnheardSinceRestart    bool   `json:"unheard_since_restart"`
	AwaitingFirstHeartbeat bool   `json:"awaiting_first_heartbeat"`
	Jobs                   uint32 `json:"jobs"`
	// Metrics are the node's named figures (wire.Metric), {} when none;
	// persisted_jobs and persisted_bytes are always there (0 when the
	// node keeps no persist-after-job values of ended jobs).
	Metrics map[string]float64 `json:"metrics"`
	// Persisted names the ended jobs whose persist-after-job values the
	// node keeps, with their bytes there, the largest first: all of
	// them up to 64 (wire.MaxPersistedJobs; metrics persisted_jobs
	// counts all), [] when none or from a controller that does not send
	// them. Reading or deleting them takes each job's credential.
	Persisted []persistedJobJSON `json:"persisted"`
}

// persistedJobJSON is an ended job whose persist-after-job values a node
// keeps, and their bytes on the node (all tiers).
type persistedJobJSON struct {
	JobID string `json:"job_id"`
	Bytes int64  `json:"bytes"`
}

type statusTierJSON struct {
	Kind          string  `json:"kind"`
	UsedBytes     int64   `json:"used_bytes"`
	CapacityBytes int64   `json:"capacity_bytes"`
	Mbps          float64 `json:"mbps"` // the tier's bandwidth in Mb/s as the node reports it; 0: not reported
}

type statusJobJSON struct {
	JobID            string        `json:"job_id"`
	Name             string        `json:"name"`
	Tier             string        `json:"tier"`
	Epoch            uint64        `json:"epoch"`
	Nodes            []mapNodeJSON `json:"nodes"`
	Lambdas          uint32        `json:"lambdas"`
	CapacityBytes    int64         `json:"capacity_bytes"`
	PeakMbps         float64       `json:"peak_mbps"`
	LatencySensitive bool          `json:"latency_sensitive"`
	// AllocMbps and AllocBytes are the job's allotment: what it asked
	// for (its hints, else its profile's or the default size), which may
	// exceed what the cluster has (see CarryMbps and statusJSON.Allotments).
	// AllocBytes 0: no size allotted (no capacity hint and no learned
	// size: Pocket's default allots bandwidth only); the job's values use
	// its nodes' free capacity.
	AllocMbps  float64 `json:"alloc_mbps"`
	AllocBytes int64   `json:"alloc_bytes"`
	// CarryMbps is the Mb/s the job's nodes carry of AllocMbps when every
	// listed job uses its whole allotment, each node shared in proportion
	// to what the jobs ask of it (setCarry): AllocMbps unless its nodes
	// are oversubscribed.
	CarryMbps float64 `json:"carry_mbps"`
	// CarryBytes is the same for AllocBytes: the bytes the job's nodes
	// hold of it on its tier, each node's capacity shared in proportion
	// to what the jobs ask of it.
	CarryBytes int64 `json:"carry_bytes"`
	AgeMs      int64 `json:"age_ms"`
	// UsedMbps and UsedBytes are the job's own traffic (Mb/s, averaged
	// over 3 heartbeats) and bytes on its nodes, as its nodes report them.
	UsedMbps  float64 `json:"used_mbps"`
	UsedBytes int64   `json:"used_bytes"`
	// CostPerHour is what the job holds at the price table, US dollars an
	// hour (controller.Prices.Cost, jobCost): its allotment, or its use
	// where that is larger (UsedMbps, UsedBytes), for bandwidth and bytes
	// each. Before, only the allotment was priced, so a job grown beyond
	// it onto more nodes, or one with no size allotted that held 10 GiB
	// of DRAM, cost what it had asked for (a new user's trial).
	CostPerHour float64 `json:"cost_per_hour"`
	// Moving: values are moving between the nodes of the job's map (a node
	// of it drains or joins), or have moved and not every node has
	// reported since (wire.JobStatus.Settling). UsedBytes, which counts
	// the values a draining node has not moved yet, sums each node's
	// latest report then: a value moved between two nodes' reports may
	// count on both or on neither. Before, the mark went with the move's
	// end, and a new user's trial read 13 MiB without it for a job that
	// held 28 MiB (the node it grew onto had not reported since).
	Moving bool `json:"moving"`
	// Tenant is the tenant that registered the job over TLS (its client
	// certificate's name; "" without TLS), whose profiles size it.
	Tenant string `json:"tenant"`
}

// pricesJSON is a price table in status --json: US dollars per GiB-hour
// of DRAM and of NVMe and per Gb/s-hour of network, and where it came
// from: "controller" (the controller's status reply carries its prices),
// else "flags" (--prices, --price-*) or "default" (the default table), for
// a controller that does not send its prices.
type pricesJSON struct {
	DRAMGiBHour float64 `json:"dram_gib_hour"`
	NVMeGiBHour float64 `json:"nvme_gib_hour"`
	GbpsHour    float64 `json:"gbps_hour"`
	Source      string  `json:"source"`
}

// Where the prices of a status came from (pricesJSON.Source).
const (
	pricesFromController = "controller"
	pricesFromFlags      = "flags"
	pricesFromDefault    = "default"
)

// statusPrices is the table status prices st's jobs at: the controller's
// (st.Prices) when its reply carries a valid one, else pf's (the default
// table when pf gives no price). note, when not "", says what was not
// used: pf's prices against a controller that sends its own (a warning:
// the flags given, not used, and the controller's prices), or the
// controller's absent or bad prices. err is pf's (a bad flag or file).
func statusPrices(st *wire.ClusterStatus, pf *priceFlags) (prices controller.Prices, source, note string, err error) {
	ctl, ok, bad := replyPrices(st)
	if ok {
		if pf.given() {
			note = fmt.Sprintf("%s not used: the controller sends its own prices (%s) and the costs are at those; "+
				"the price flags of pocket status only price the jobs of a controller that does not send its prices (older than this pocket), "+
				"they are no what-if: to price the jobs otherwise, start the controller with those prices (pocket controller --prices FILE or --price-*)",
				pf.givenText(), priceTable(ctl.DRAMGiBHour, ctl.NVMeGiBHour, ctl.GbpsHour))
		}
		return ctl, pricesFromController, note, nil
	}
	if prices, err = pf.prices(); err != nil {
		return prices, "", "", err
	}
	source = pricesFromDefault
	if pf.given() {
		source = pricesFromFlags
	}
	switch {
	case bad != nil:
		note = fmt.Sprintf("the controller's prices are not valid (%v): the costs are at ", bad)
	default:
		note = "the controller does not send its prices (it is older than this pocket): the costs are at "
	}
	if source == pricesFromFlags {
		note += "the prices of --prices and --price-*"
	} else {
		note += "the default prices; give the controller's with --prices or --price-*"
	}
	return prices, source, note, nil
}

// replyPrices is the price table st carries: ok when it carries one that
// passes controller.Prices.Check; bad is Check's error of one that does not.
func replyPrices(st *wire.ClusterStatus) (prices controller.Prices, ok bool, bad error) {
	if st.Prices == nil {
		return prices, false, nil
	}
	prices = controller.ExactPrices(st.Prices.DRAMGiBHour, st.Prices.NVMeGiBHour, st.Prices.GbpsHour)
	if err := prices.Check(); err != nil {
		return prices, false, err
	}
	return prices, true, nil
}

// statusView is the status reply st, each job's cost at the controller's
// prices when the reply carries them, else at the default prices.
func statusView(st *wire.ClusterStatus) statusJSON {
	if p, ok, _ := replyPrices(st); ok {
		return statusViewFrom(st, p, pricesFromController)
	}
	return statusViewFrom(st, controller.DefaultPrices(), pricesFromDefault)
}

type clientHoldJSON struct {
	Client     string  `json:"client"` // "tenant NAME", "client ADDR" or "operator ADDR"
	Tenant     string  `json:"tenant"` // NAME of a tenant ("" otherwise), as jobs[].tenant`
	Jobs       uint32  `json:"jobs"`
	AllocBytes int64   `json:"alloc_bytes"`
	AllocMbps  float64 `json:"alloc_mbps"`
	// PersistedBytes is what its ended jobs' persist-after-job values
	// hold, as the nodes last reported: it counts against the byte quota.
	PersistedBytes int64 `json:"persisted_bytes"`
	// StoredBytes is what it stores (its live jobs' bytes on their nodes
	// and PersistedBytes); OverQuota: past the byte quota, its live jobs'
	// puts are refused.
	StoredBytes int64 `json:"stored_bytes"`
	OverQuota   bool  `json:"over_quota"`
}

type clientQuotaJSON struct {
	Bytes int64   `json:"bytes"`
	Mbps  float64 `json:"mbps"`
}

// statusViewAt is the status reply st with each job's cost at prices
// (from the flags).
func statusViewAt(st *wire.ClusterStatus, prices controller.Prices) statusJSON {
	return statusViewFrom(st, prices, pricesFromFlags)
}

// statusViewFrom is the status reply st with each job's cost at prices,
// which came from source (pricesJSON.Source).
func statusViewFrom(st *wire.ClusterStatus, prices controller.Prices, source string) statusJSON {
	out := statusJSON{NodeCount: st.NodeCount, JobCount: st.JobCount, Nodes: []statusNodeJSON{}, Jobs: []statusJobJSON{},
		AutoscaleMaxNodes: st.AutoscaleMaxNodes, Clients: clientHolds(st.Clients), Quota: clientQuotaJSON{Bytes: st.QuotaBytes, Mbps: st.QuotaMbps},
		Prices: pricesJSON{DRAMGiBHour: prices.DRAMGiBHour,
			NVMeGiBHour: prices.NVMeGiBHour, GbpsHour: prices.GbpsHour, Source: source}}
	for _, n := range st.Nodes {
		v := statusNodeJSON{Addr: n.Addr, State: n.State.String(), Tiers: []statusTierJSON{}, RxMbps: n.RxMbps,
			TxMbps: n.TxMbps, CPUPercent: n.CPUPercent, Cores: n.Cores, LastSeenMs: n.LastSeen.Milliseconds(),
			UnheardSinceRestart: n.Restored, AwaitingFirstHeartbeat: n.Restored && n.State != wire.NodeDead, Jobs: n.Jobs}
		for _, t := range n.Tiers {
			v.UsedBytes += t.UsedBytes
			v.CapacityBytes += t.CapacityBytes
			v.Tiers = append(v.Tiers, statusTierJSON{Kind: tierName(t.Kind), UsedBytes: t.UsedBytes, CapacityBytes: t.CapacityBytes, Mbps: t.Mbps})
		}
		v.Metrics = map[string]float64{wire.MetricPersistedJobs: 0, wire.MetricPersistedBytes: 0}
		for _, m := range n.Metrics {
			v.Metrics[m.Name] = m.Value
		}
		v.Persisted = make([]persistedJobJSON, 0, len(n.Persisted))
		for _, h := range n.Persisted {
			v.Persisted = append(v.Persisted, persistedJobJSON{JobID: h.Job, Bytes: h.Bytes})
		}
		out.Nodes = append(out.Nodes, v)
	}
	for _, j := range st.Jobs {
		nodes := mapNodesJSON(j.Nodes)
		// The epoch changes of a node's death and loss settle the job's
		// figures with nothing moving: USED SIZE says "?" then, not "~"
		// (a new user's trial read "~0B", "values are moving", for 45 s
		// after a node of the job was killed).
		out.Jobs = append(out.Jobs, statusJobJSON{JobID: j.Job, Name: j.Name, Tier: tierName(j.Tier), Epoch: j.Epoch,
			Nodes: nodes, Lambdas: j.Hints.Lambdas, CapacityBytes: j.Hints.CapacityBytes,
			PeakMbps: j.Hints.PeakMbps, LatencySensitive: j.Hints.LatencySensitive, AllocMbps: j.AllocMbps,
			AllocBytes: j.AllocBytes, AgeMs: j.Age.Milliseconds(), UsedMbps: j.UsedMbps, UsedBytes: j.UsedBytes,
			CostPerHour: jobCost(prices, j, ratedMbps(st, j)), Moving: moving(j.Nodes) || j.Settling && !deadIn(nodes), Tenant: j.Tenant})
	}
	out.Allotments = tierAllotments(&out)
	out.Network = networkAllotment(&out)
	setCarry(&out)
	return out
}

func runStatus(args []string) int {
	fs := newFlagSet("status")
	addr := fs.String("controller", "", "controller address, or a comma-separated list of controllers of which one is active (default $POCKET_CONTROLLER or "+ctlDefaultAddr+")")
	asJSON := fs.Bool("json", false, "print a JSON object with nodes and jobs")
	allJobs := fs.Bool("jobs", false, "list every job, page by page (the status lists the job count and the first 100 jobs)")
	var tf tlsFlags
	tf.bind(fs)
	var pf priceFlags
	pf.bind(fs, "the jobs' costs are at the controller's prices, which its status reply carries; these prices are used only\n"+
		"for a controller that does not send its prices (older than this pocket): give them as the controller's. Against a\n"+
		"controller that sends its prices they are not used (no what-if), and a warning on stderr says so")
	if _, code, ok := parseFlags(fs, args, 0, 0); !ok {
		return code // a bad price flag too (priceFlags.bind)
	}
	tc, err := tf.config(pki.RoleOperator)
	if err != nil {
		return fail("status: %v", err)
	}
	mc, ctx, done := ctlClient(*addr, tc)
	defer done()
	st, err := mc.Status(ctx)
	if err == nil && *allJobs {
		err = listAllJobs(ctx, mc, st)
	}
	if err != nil {
		return fail("status: %v", ctlError(err, *addr, tf.insecure))
	}
	prices, source, note, err := statusPrices(st, &pf)
	if err != nil {
		return fail("status: %v", err)
	}
	if note != "" {
		kind := "note"
		if source == pricesFromController {
			kind = "warning" // price flags given, and not used
		}
		warn("status", "%s: %s", kind, note)
	}
	v := statusViewFrom(st, prices, source)
	v.Controller = mc.Leader()
	if *asJSON {
		return printJSON(v)
	}
	printStatus(v)
	return 0
}

// listAllJobs appends to st.Jobs the jobs after its first page, one
// ListJobs page at a time, until the controller's cursor runs out. Jobs
// registered meanwhile may be listed; the job count stays the status's.
func listAllJobs(ctx context.Context, mc *metaclient.Client, st *wire.ClusterStatus) error {
	for after := st.NextJob; after != 0; {
		page, err := mc.ListJobs(ctx, after, 0)
		if err != nil {
			return fmt.Errorf("listing the jobs after cursor %d: %w", after, err)
		}
		st.Jobs = append(st.Jobs, page.Jobs...)
		if page.NextJob != 0 && page.NextJob <= after {
			return fmt.Errorf("listing the jobs: the controller's cursor went from %d back to %d", after, page.NextJob)
		}
		after = page.NextJob
	}
	st.NextJob = 0
	return nil
}

// liveFigures are a node's RX/TX and CPU cells: "-" for a dead node (its
// last figures are stale) and for one awaiting its first heartbeat since
// the controller started (it has sent none to this controller).
func liveFigures(n statusNodeJSON) (rates, cpu string) {
	if n.State == wire.NodeDead.String() || n.AwaitingFirstHeartbeat {
		return "-", "-"
	}
	return fmt.Sprintf("%.0f/%.0f", n.RxMbps, n.TxMbps), fmt.Sprintf("%.0f%%", n.CPUPercent)
}

// usedCell is a node tier's USED cell: "-" for a dead node (its values
// went with it; its last figure is stale, like its rates) and for one
// restored and unheard since the controller started (it reported none
// to this controller).
func usedCell(n statusNodeJSON, t statusTierJSON) string {
	if n.State == wire.NodeDead.String() || n.UnheardSinceRestart {
		return "-"
	}
	return units.FormatSize(t.UsedBytes)
}

func printStatus(v statusJSON) {
	if v.Controller != "" {
		// Among several controllers, which one leads (a new user's trial
		// had to read the logs to tell).
		fmt.Printf("controller %s (the one that answered: the active one)\n", v.Controller)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NODE\tSTATE\tTIER\tUSED\tCAPACITY\tTIER Mb/s\tRX/TX Mb/s\tCPU\tJOBS")
	unmeasured := false
	for _, n := range v.Nodes {
		rates, cpu := liveFigures(n)
		for i, t := range n.Tiers {
			unmeasured = unmeasured || t.Mbps <= 0
			used := usedCell(n, t)
			if i == 0 {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", n.Addr, n.State, t.Kind,
					used, units.FormatSize(t.CapacityBytes), mbpsCell(t), rates, cpu, n.Jobs)
				continue
			}
			fmt.Fprintf(w, "\t\t%s\t%s\t%s\t%s\t\t\t\n", t.Kind, used, units.FormatSize(t.CapacityBytes), mbpsCell(t))
		}
		if len(n.Tiers) == 0 {
			fmt.Fprintf(w, "%s\t%s\t-\t\t\t\t%s\t%s\t%d\n", n.Addr, n.State, rates, cpu, n.Jobs)
		}
	}
	w.Flush()
	if unmeasured {
		fmt.Printf("TIER Mb/s -: the node reports no bandwidth for the tier; placement counts %.0f Mb/s\n", controller.DefaultPolicy().NodeMbps)
	}
	if int(v.NodeCount) > len(v.Nodes) {
		fmt.Printf("%d nodes, %d listed (the status reply's size bound)\n", v.NodeCount, len(v.Nodes))
	}
	printNodeNotes(v)
	if v.AutoscaleMaxNodes > 0 {
		fmt.Printf("the controller autoscales, up to %d node(s)\n", v.AutoscaleMaxNodes)
	}
	if v.JobCount == 0 && len(v.Jobs) == 0 {
		fmt.Println("\nno jobs")
		// Clients whose jobs have all ended may still hold persisted
		// values, past the byte quota too: before, this table was left
		// out then, and the operator could not see why a client's
		// registrations were refused (a new user's trial).
		printClients(v)
		return
	}
	fmt.Printf("\n%d job(s)", v.JobCount)
	if uint64(len(v.Jobs)) < v.JobCount {
		fmt.Printf(", the first %d listed: pocket status --jobs lists all", len(v.Jobs))
	}
	fmt.Println()
	w = tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	tenants := slices.ContainsFunc(v.Jobs, func(j statusJobJSON) bool { return j.Tenant != "" })
	fmt.Fprintln(w, tenantCell(tenants, "TENANT")+"JOB\tTIER\tEPOCH\tNODES\tALLOC Mb/s\tUSED Mb/s\tALLOC SIZE\tUSED SIZE\tCOST $/h\tMAP")
	var total float64
	anyMoving, anyDead, unsized, over := false, false, false, false
	for _, j := range v.Jobs {
		fmt.Fprintf(w, "%s%s\t%s\t%d\t%d\t%.0f\t%.0f\t%s\t%s\t%s\t%s\n", tenantCell(tenants, cmp.Or(j.Tenant, "-")), j.JobID, j.Tier,
			j.Epoch, len(j.Nodes), j.AllocMbps, j.UsedMbps, allocSizeCell(j), usedSizeCell(j), costCell(j.CostPerHour), mapNotes(j.Nodes))
		total += j.CostPerHour
		anyMoving = anyMoving || j.Moving
		anyDead = anyDead || deadIn(j.Nodes)
		unsized = unsized || j.AllocBytes <= 0
		over = over || overAllotment(j)
	}
	w.Flush()
	if unsized {
		fmt.Println("ALLOC SIZE -: no size allotted (no capacity hint, and no size learned for the job's name, or one no tier had room for when it registered): " +
			"its values use its nodes' free capacity, none of it reserved for the job")
	}
	fmt.Printf("COST $/h: each job's allotment, or its use where larger (USED Mb/s up to its nodes' rating, USED SIZE), at %s; %s $/h for those listed\n",
		pricesPhrase(v.Prices), costCell(total))
	printAllotments(v)
	if over {
		fmt.Println("USED SIZE !: the job holds more than its ALLOC SIZE: a size (a capacity hint's, or one learned from the job's name) reserves space, it does not limit the job; " +
			"its puts go on into its nodes' free capacity, which other jobs' allotments may need, up to its client's byte quota when there is one")
	}
	if anyDead {
		fmt.Println("USED SIZE ?: a node of the job's map is dead (MAP): what it holds is not counted")
	}
	if anyMoving {
		fmt.Println("USED SIZE ~: values are moving, or have just moved, between the job's nodes (MAP); each node's latest report counts, " +
			"so a value moved between two reports may count twice or not at all until every node has reported since the move")
	}
	printClients(v)
}

func clientHolds(hs []wire.ClientHold) []clientHoldJSON {
	out := make([]clientHoldJSON, 0, len(hs))
	for _, h := range hs {
		tenant, _ := strings.CutPrefix(h.Client, "tenant ")
		if tenant == h.Client {
			tenant = ""
		}
		out = append(out, clientHoldJSON{Client: h.Client, Tenant: tenant, Jobs: h.Jobs, AllocBytes: h.AllocBytes, AllocMbps: h.AllocMbps, PersistedBytes: h.PersistedBytes,
			StoredBytes: h.StoredBytes, OverQuota: h.OverQuota})
	}
	return out
}

// printClients shows what each client's jobs are allotted against the
// quotas, when the controller has a quota or more than one client holds
// jobs.
func printClients(v statusJSON) {
	q := v.Quota
	if len(v.Clients) == 0 || (q.Bytes == 0 && q.Mbps == 0 && len(v.Clients) < 2) {
		return
	}
	quota := "no allotment quota per client"
	if q.Bytes > 0 || q.Mbps > 0 {
		quota = "quota per client: " + quotaText(q.Bytes, q.Mbps)
	}
	fmt.Printf("\nallotted per client (%s):\n", quota)
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CLIENT\tJOBS\tALLOC SIZE\tALLOC Mb/s\tPERSISTED\tSTORED")
	kept, over := false, false
	for _, c := range v.Clients {
		mark := ""
		if c.OverQuota {
			mark, over = "!", true
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s%s\n", c.Client, c.Jobs, units.FormatSize(c.AllocBytes), mbpsText(c.AllocMbps),
			units.FormatSize(c.PersistedBytes), units.FormatSize(c.StoredBytes), mark)
		kept = kept || c.PersistedBytes > 0
	}
	w.Flush()
	if kept && q.Bytes > 0 {
		fmt.Println("PERSISTED: what the client's ended jobs' persist-after-job values hold, as the nodes last reported; " +
			"it counts against the byte quota until they are deleted")
	}
	if q.Bytes > 0 {
		fmt.Println("STORED: its live jobs' bytes on their nodes (USED SIZE) and PERSISTED, against the byte quota")
	}
	if over {
		fmt.Println("STORED !: past the byte quota: the nodes refuse the client's jobs' puts until it stores at most the quota (its gets, lists and deletes go on)")
	}
}

// mbpsText prints Mb/s to 12 significant digits, as the controller's
// refusals do: 599.9999999 left reads so, not "600".
func mbpsText(v float64) string { return strconv.FormatFloat(v, 'g', 12, 64) }

// quotaText is "300MiB and 2000 Mb/s", leaving out a limit of 0.
func quotaText(bytes int64, mbps float64) string {
	var parts []string
	if bytes > 0 {
		parts = append(parts, units.FormatSize(bytes))
	}
	if mbps > 0 {
		parts = append(parts, mbpsText(mbps)+" Mb/s")
	}
	return strings.Join(parts, " and ")
}

// pricesPhrase names the price table of a status and its prices.
func pricesPhrase(p pricesJSON) string {
	from := map[string]string{pricesFromController: "the controller's prices", pricesFromFlags: "the prices of --prices and --price-*",
		pricesFromDefault: "the default prices"}[p.Source]
	if from == "" {
		from = "the prices"
	}
	return fmt.Sprintf("%s (%s)", from, priceTable(p.DRAMGiBHour, p.NVMeGiBHour, p.GbpsHour))
}

// priceTable is "0.007875 $ per GiB-hour of DRAM, 0.0000811664 of NVMe,
// 0.01022222 per Gb/s-hour", the prices in US dollars by priceText.
func priceTable(dramGiBHour, nvmeGiBHour, gbpsHour float64) string {
	return fmt.Sprintf("%s $ per GiB-hour of DRAM, %s of NVMe, %s per Gb/s-hour", priceText(dramGiBHour), priceText(nvmeGiBHour), priceText(gbpsHour))
}

// priceText prints a price in US dollars as a plain decimal, never in
// e-notation ("0.0000811664", not "8.117e-05"), to 7 significant digits
// (0.01022222 for the controller's 0.010222...), so that a price shown
// times a quantity gives the cost shown beside it to its 4 decimals.
func priceText(usd float64) string {
	r, err := strconv.ParseFloat(strconv.FormatFloat(usd, 'g', 7, 64), 64)
	if err != nil { // not finite: a price table's Check refuses it
		return strconv.FormatFloat(usd, 'g', -1, 64)
	}
	return strconv.FormatFloat(r, 'f', -1, 64)
}

// moving reports whether values move between the nodes of a job's map:
// one of them drains (from the cluster, or from the job's map) or joins.
func moving(ns []wire.MapNode) bool {
	for _, n := range ns {
		if n.State == wire.NodeDraining || n.State == wire.NodeJoining {
			return true
		}
	}
	return false
}

// costCell is a cost in dollars an hour to 4 decimals, or "<0.0001" for a
// cost under that but not 0 (a small NVMe job's 7.9e-06 read 0.0000, as
// if free; then 7.9e-06 and 7.5e-09, in e-notation, which a new user's
// trial read as a fault; --json carries the exact figure).
func costCell(usd float64) string {
	if usd > 0 && usd < 0.00005 {
		return "<0.0001"
	}
	return strconv.FormatFloat(usd, 'f', 4, 64)
}

// tenantCell is a status row's TENANT cell and its tab, when some listed
// job has a tenant (a cluster over TLS); else nothing, as before tenants.
func tenantCell(shown bool, s string) string {
	if !shown {
		return ""
	}
	return s + "\t"
}

// allocSizeCell is a job's ALLOC SIZE: its allotted bytes, "-" when it
// has none (a job sized by Pocket's default allots bandwidth only).
func allocSizeCell(j statusJobJSON) string {
	if j.AllocBytes <= 0 {
		return "-"
	}
	return units.FormatSize(j.AllocBytes)
}

// usedSizeCell is a job's USED SIZE: its bytes, marked "~" while values
// move between its nodes (statusJobJSON.Moving), "?" while a node of its
// map is dead (what it holds is not counted).
func usedSizeCell(j statusJobJSON) string {
	cell := units.FormatSize(j.UsedBytes)
	if j.Moving {
		cell = "~" + cell
	}
	if deadIn(j.Nodes) {
		cell = "?" + cell
	}
	if overAllotment(j) {
		cell += "!"
	}
	return cell
}

// jobCost is the cost an hour of what job j holds at prices: the larger
// of its allotment and its use, for its bandwidth and its bytes each (a
// job's use can pass its allotment: its map grows for load beyond it, and
// a size reserves space without limiting the job). Its use of bandwidth
// counts up to rated, what its map's nodes are rated for (ratedMbps; 0:
// not known), as a job's profile counts it: traffic beyond the nodes'
// rating, which loopback allows, is no bandwidth one could provision
// (before, a trial's job read 4,595 Mb/s on 4 nodes rated 200, and was
// priced at that).
func jobCost(prices controller.Prices, j wire.JobStatus, rated float64) float64 {
	used := j.UsedMbps
	if rated > 0 {
		used = min(used, rated)
	}
	return prices.Cost(wire.Tier(j.Tier), max(j.AllocMbps, used), max(j.AllocBytes, j.UsedBytes))
}

// ratedMbps is the bandwidth of job j's tier that the nodes of its map
// are rated for together, by the nodes st lists (a node that reports none
// counts the placement default, as placement does); 0 when st lists none
// of them.
func ratedMbps(st *wire.ClusterStatus, j wire.JobStatus) float64 {
	rating := map[string]float64{}
	for _, n := range st.Nodes {
		for _, t := range n.Tiers {
			if t.Kind == j.Tier {
				rating[n.Addr] = t.Mbps
				if t.Mbps <= 0 {
					rating[n.Addr] = controller.DefaultPolicy().NodeMbps
				}
			}
		}
	}
	sum := 0.0
	for _, mn := range j.Nodes {
		sum += rating[mn.Addr]
	}
	return sum
}

// overAllotment reports whether a job holds more bytes than it was
// allotted: a capacity hint reserves, it does not limit.
func overAllotment(j statusJobJSON) bool { return j.AllocBytes > 0 && j.UsedBytes > j.AllocBytes }

// mapNotes names the nodes of a job's map that are not plain active
// members (joining or leaving it while it runs, draining, dead), or "-".
// deadIn reports whether a node of a job's map (as status --json shows
// it) is dead.
func deadIn(ns []mapNodeJSON) bool {
	return slices.ContainsFunc(ns, func(n mapNodeJSON) bool { return n.State == wire.NodeDead.String() })
}

func mapNotes(ns []mapNodeJSON) string {
	var notes []string
	for _, n := range ns {
		if n.State != wire.NodeActive.String() {
			notes = append(notes, n.Addr+" "+n.State)
		}
	}
	if len(notes) == 0 {
		return "-"
	}
	return strings.Join(notes, ", ")
}

// printNodeNotes prints what does not fit the node table: a node the
// controller restored and has not heard from since (awaiting, or dead), a draining node's
// progress (held, when it keeps persisted values of ended jobs), the
// persisted values of ended jobs a node keeps (metrics persisted_jobs and
// persisted_bytes, which the controller adds), and the eBPF block latency
// each node measured over its last heartbeat interval (metrics
// "blk_p99_us:DEV:OP" and "blk_per_sec:DEV:OP", sent by dataplane/agent).
// A dead node's figures are its last report: its persisted values are
// said to be so, unreachable, and its block latencies are left out.
func printNodeNotes(v statusJSON) {
	for _, n := range v.Nodes {
		if note := restoredNote(n); note != "" {
			fmt.Printf("node %s: %s\n", n.Addr, note)
		}
		dead := n.State == wire.NodeDead.String()
		switch kept, ok := persistedNote(n); {
		case n.State == wire.NodeDraining.String():
			fmt.Printf("node %s draining: %s\n", n.Addr, drainNote(n))
		case ok && dead:
			// Its last report: unreachable while it is dead, and lost if it
			// comes back as a new process (a new user's trial read the
			// plain note as advice to read them).
			fmt.Printf("node %s (dead) kept %s when last heard from: unreachable while it is dead; "+
				"if it comes back restarted they are lost (their keys then read lost)\n", n.Addr, kept)
		case ok:
			fmt.Printf("node %s keeps %s (read and delete them with each job's credential, or its token; pocket job credential JOB prints the credential)\n", n.Addr, kept)
		}
		if line := blockNote(n); line != "" && !dead {
			fmt.Printf("node %s block p99: %s\n", n.Addr, line)
		}
	}
}

// blockNote folds a node's block latencies (metrics "blk_p99_us:DEV:OP"
// and "blk_per_sec:DEV:OP") into one line: "vda:read 120 us 30 IO/s,
// vda:write 900 us 4 IO/s"; "" when it reports none.
func blockNote(n statusNodeJSON) string {
	var parts []string
	for _, name := range sortedMetricNames(n.Metrics, "blk_p99_us:") {
		devOp := strings.TrimPrefix(name, "blk_p99_us:")
		parts = append(parts, fmt.Sprintf("%s %.0f us %.0f IO/s", devOp, n.Metrics[name], n.Metrics["blk_per_sec:"+devOp]))
	}
	return strings.Join(parts, ", ")
}

// restoredNote is what the status says of a node the controller read
// from its state and has not heard from since it started: awaiting its
// first heartbeat, or dead once the controller's grace for it passed;
// "" for a node heard from.
func restoredNote(n statusNodeJSON) string {
	switch {
	case n.AwaitingFirstHeartbeat:
		return "restored from the controller's state, awaiting its first heartbeat since the controller started"
	case n.UnheardSinceRestart:
		return "dead: restored from the controller's state and never heard from since the controller started"
	}
	return ""
}

// persistedNote describes the persist-after-job values of ended jobs node
// n keeps (wire.MetricPersistedJobs, MetricPersistedBytes), and reports
// whether it keeps any.
func persistedNote(n statusNodeJSON) (string, bool) {
	jobs, bytes := n.Metrics[wire.MetricPersistedJobs], n.Metrics[wire.MetricPersistedBytes]
	if jobs <= 0 && bytes <= 0 {
		return "", false
	}
	return fmt.Sprintf("persist-after-job values of %.0f ended job(s), %s%s", jobs, units.FormatSize(int64(bytes)), persistedJobsNote(n)), true
}

// persistedNamed is how many of the ended jobs a node keeps persisted
// values of the plain status names (--json names them all).
const persistedNamed = 3

// persistedJobsNote names the first persistedNamed jobs of n.Persisted
// with their bytes, and how many more there are: ": a-1 3MiB, b-2 1KiB
// and 5 more"; "" when the controller named none.
func persistedJobsNote(n statusNodeJSON) string {
	if len(n.Persisted) == 0 {
		return ""
	}
	var b strings.Builder
	for i, h := range n.Persisted[:min(len(n.Persisted), persistedNamed)] {
		sep := ", "
		if i == 0 {
			sep = ": "
		}
		fmt.Fprintf(&b, "%s%s %s", sep, h.JobID, units.FormatSize(h.Bytes))
	}
	shown := min(len(n.Persisted), persistedNamed)
	if more := int64(n.Metrics[wire.MetricPersistedJobs]) - int64(shown); more > 0 {
		fmt.Fprintf(&b, " and %d more", more)
	}
	return b.String()
}

// drainNote is a draining node's progress. A node that keeps persisted
// values of ended jobs does not leave when its data has moved: the
// controller holds the drain until they are deleted or the drain is
// ordered again with --discard-persisted (controller/drain.go).
func drainNote(n statusNodeJSON) string {
	note := "moving its data"
	if left, ok := n.Metrics[wire.MetricDrainLeft]; ok {
		note = fmt.Sprintf("%.0f value(s) left to move at its last pass", left)
	}
	if room := n.Metrics[wire.MetricDrainNoRoom]; room > 0 {
		note += fmt.Sprintf(", %.0f with no room on the nodes they go to (a drain not ordered with --lose-overflow waits for room past its deadline)", room)
	}
	done := n.Metrics[wire.MetricDrainDone] >= 1
	kept, held := persistedNote(n)
	switch {
	case held && done:
		return fmt.Sprintf("held: all other data moved, but it keeps %s, which leaving would destroy; "+
			"it waits until they are deleted (POCKET_CREDENTIAL=... pocket rm JOB KEY, or pocket rm --all JOB for all of them and any chunks of large values no key names; pocket job credential JOB prints it), or run pocket node drain %s --discard-persisted", kept, n.Addr)
	case held:
		return fmt.Sprintf("%s; it keeps %s, which hold it when the rest has moved (until deleted, or pocket node drain %s --discard-persisted)", note, kept, n.Addr)
	case done:
		return "all data moved; leaving"
	}
	return note
}

// mbpsCell is a tier's bandwidth in Mb/s for the table, "-" when the node
// reports none.
func mbpsCell(t statusTierJSON) string {
	if t.Mbps <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", t.Mbps)
}

func sortedMetricNames(m map[string]float64, prefix string) []string {
	var out []string
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// priceFlags are the price-table flags of `pocket controller`, `pocket
// up`, `pocket status` and `pocket job register`: a JSON file
// (controller.LoadPrices) and per-price flags that override it; what
// neither gives is controller.DefaultPrices'. A price flag given as 0 is
// a price of 0 (its set field records that it was given; a non-zero
// value counts as given either way).
type priceFlags struct {
	file                      string
	dram, nvme, gbps          float64
	dramSet, nvmeSet, gbpsSet bool
}

// priceValue is a price flag's flag.Value: a number of US dollars, and
// whether it was given.
type priceValue struct {
	v   *float64
	set *bool
}

func (p priceValue) String() string {
	if p.v == nil || p.set == nil || !*p.set {
		return ""
	}
	return strconv.FormatFloat(*p.v, 'g', -1, 64)
}

func (p priceValue) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return errors.New("not a number")
	}
	*p.v, *p.set = v, true
	return nil
}

func (p *priceFlags) bind(fs *flag.FlagSet, why string) {
	d := controller.DefaultPrices()
	fs.StringVar(&p.file, "prices", "", "a JSON file of prices in US dollars: {\"dram_gib_hour\": X, \"nvme_gib_hour\": Y, \"gbps_hour\": Z};\n"+why)
	fs.Var(priceValue{&p.dram, &p.dramSet}, "price-dram-gib-hour", fmt.Sprintf("`USD` per GiB-hour of DRAM, 0 to 1e9 (default the file's, else %s, AWS r5.large)", priceText(d.DRAMGiBHour)))
	fs.Var(priceValue{&p.nvme, &p.nvmeSet}, "price-nvme-gib-hour", fmt.Sprintf("`USD` per GiB-hour of NVMe, 0 to 1e9 (default the file's, else %s, AWS i3.large)", priceText(d.NVMeGiBHour)))
	fs.Var(priceValue{&p.gbps, &p.gbpsSet}, "price-gbps-hour", fmt.Sprintf("`USD` per Gb/s-hour of network, 0 to 1e9 (default the file's, else %s, AWS c5n.large over c5.large)", priceText(d.GbpsHour)))
	addFlagCheck(fs, func() error { // a price file or price no command can run with: usage
		_, err := p.prices()
		return err
	})
}

// givenText names the price flags given, with their values, for a
// message: "--prices FILE and --price-gbps-hour 5 were".
func (p *priceFlags) givenText() string {
	var given []string
	if p.file != "" {
		given = append(given, "--prices "+p.file)
	}
	for _, f := range []struct {
		name string
		v    float64
		set  bool
	}{{"--price-dram-gib-hour", p.dram, p.dramSet}, {"--price-nvme-gib-hour", p.nvme, p.nvmeSet}, {"--price-gbps-hour", p.gbps, p.gbpsSet}} {
		if f.set || f.v != 0 {
			given = append(given, f.name+" "+strconv.FormatFloat(f.v, 'g', -1, 64))
		}
	}
	if len(given) == 1 {
		return given[0] + " was"
	}
	return strings.Join(given, " and ") + " were"
}

// given reports whether any price flag or file was given.
func (p *priceFlags) given() bool {
	return p.file != "" || p.dramSet || p.nvmeSet || p.gbpsSet || p.dram != 0 || p.nvme != 0 || p.gbps != 0
}

// prices is the exact table the flags give, checked: each price given
// by a flag, else by the file, else the default.
func (p *priceFlags) prices() (controller.Prices, error) {
	out := controller.DefaultPrices()
	if p.file != "" {
		err := checkReadable(p.file) // not a pipe, which would block the read
		if err == nil {
			out, err = controller.LoadPrices(p.file)
		}
		if err != nil {
			return out, fmt.Errorf("--prices %q: %w", p.file, err)
		}
	}
	dram, nvme, gbps := out.DRAMGiBHour, out.NVMeGiBHour, out.GbpsHour
	for _, f := range []struct {
		name string
		v    float64
		set  bool
		dst  *float64
	}{{"--price-dram-gib-hour", p.dram, p.dramSet, &dram}, {"--price-nvme-gib-hour", p.nvme, p.nvmeSet, &nvme}, {"--price-gbps-hour", p.gbps, p.gbpsSet, &gbps}} {
		if !f.set && f.v == 0 {
			continue
		}
		if err := controller.ExactPrices(f.v, 0, 0).Check(); err != nil {
			return out, fmt.Errorf("%s %v: %w", f.name, f.v, controller.ErrBadPrice)
		}
		*f.dst = f.v
	}
	return controller.ExactPrices(dram, nvme, gbps), nil
}
