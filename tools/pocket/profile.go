package main

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/internal/pki"
	"github.com/pocketstore/pocket/internal/units"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// jobProfileJSON is the --json form of `pocket job profile`: the stored
// profile (runs newest first) and what the next job of the name is
// allotted when registered without size hints. Every field is always
// there: lists are [] when empty, never null.
type jobProfileJSON struct {
	Name    string    `json:"name"`
	Updated time.Time `json:"updated"`
	Next    nextSize  `json:"next"`
	Runs    []runJSON `json:"runs"`
}

// nextSize is the allotment a registration without size hints gets (what
// `pocket job register` shows as ALLOC), and the runs' estimate it comes
// from (controller.Policy.NextSize).
type nextSize struct {
	Mbps          float64 `json:"mbps"`  // Mb/s allotted: the estimate, at least one lambda's
	Bytes         int64   `json:"bytes"` // bytes allotted
	EstimateMbps  float64 `json:"estimate_mbps"`
	EstimateBytes int64   `json:"estimate_bytes"`
	Runs          int     `json:"runs"` // runs the estimate weighs
}

// runJSON is one run as controller/state.Run, with the tier by name
// ("dram", "nvme"), as status and register print it.
type runJSON struct {
	Job        string        `json:"job"`
	Ended      time.Time     `json:"ended"`
	Duration   time.Duration `json:"duration_ns"`
	PeakMbps   float64       `json:"peak_mbps"`
	PeakBytes  int64         `json:"peak_bytes"`
	Tier       string        `json:"tier"`
	AllocMbps  float64       `json:"alloc_mbps"`
	AllocBytes int64         `json:"alloc_bytes"`
	// Phases are the run's peaks by quarter of its duration, [] when it
	// recorded none.
	Phases []state.Phase `json:"phases"`
}

// runJobProfile shows a job name's profile. It asks the running
// controller (--controller, $POCKET_CONTROLLER or the default address,
// over TLS with the operator's certificate as pocket status does, else a
// client's, which reads its own tenant's profiles), whose
// answer gives the next size under that controller's own policy. When no
// controller answers (none listening, or no TLS credentials to ask one
// with), or with --data-dir, it reads a stopped controller's state
// directory instead (a bbolt file a running controller holds locked) and
// gives the next size under controller.DefaultPolicy, the one pocket
// controller and pocket up size with.
func runJobProfile(args []string) int {
	fs := newFlagSet("job profile")
	addr := fs.String("controller", "", "controller address, or a comma-separated list of controllers of which one is active (default $POCKET_CONTROLLER or "+ctlDefaultAddr+")")
	data := fs.String("data-dir", "", "read the state of a stopped pocket controller or pocket up in this data directory (DIR/"+stateSubdir+") instead of asking\n"+
		"the running controller; without it, the state in $"+envDataDir+" or ~/.pocket is read only when no controller is named\n"+
		"(no --controller, no $"+metaclient.EnvController+") and none answers at the default address")
	asJSON := fs.Bool("json", false, "print a JSON object with the runs and the next size")
	var tf tlsFlags
	tf.bind(fs)
	pos, code, ok := parseFlags(fs, args, 1, 1)
	if !ok {
		return code
	}
	if *data != "" && *addr != "" {
		return usageError("job profile", errors.New("--controller asks a running controller, --data-dir reads a stopped one's state: give one"))
	}
	if pos[0] == "" { // a usage error, as job register's (before: exit 1, after a try of the controller)
		return usageError("job profile", errors.New("name the job name whose profile to show"))
	}
	var v jobProfileJSON
	var err error
	if *data != "" {
		v, err = storedProfile(*data, pos[0])
	} else {
		v, err = askProfile(*addr, &tf, pos[0])
	}
	if err != nil {
		return fail("job profile: %v", err)
	}
	if *asJSON {
		return printJSON(v)
	}
	printProfile(v)
	return 0
}

// askProfile asks the controller at addrFlag (see ctlAddr) for name's
// profile. When no controller could be asked at the default address (no
// --controller, no $POCKET_CONTROLLER), it reads the state in the default
// data directory, the default cluster's, and says which directory it
// read; a controller named by flag or environment that does not answer is
// an error, since the default data directory may hold another cluster's
// state (--data-dir reads a stopped controller's state on purpose).
func askProfile(addrFlag string, tf *tlsFlags, name string) (jobProfileJSON, error) {
	tc, err := tf.config(pki.RoleOperator, pki.RoleClient) // a client reads its tenant's
	if err == nil {
		mc, ctx, done := ctlClient(addrFlag, tc)
		defer done()
		var p *wire.JobProfile
		if p, err = mc.JobProfile(ctx, name); err == nil {
			return profileViewWire(p), nil
		}
	}
	if errors.Is(err, wire.ErrUnknownOp) {
		return jobProfileJSON{}, fmt.Errorf("the controller at %s does not serve job profiles: it is older than this pocket "+
			"(read its state with --data-dir once it is stopped, or upgrade it): %w", ctlAddr(addrFlag), err)
	}
	if !noController(err) {
		return jobProfileJSON{}, ctlError(err, addrFlag, tf.insecure)
	}
	if addrFlag != "" || os.Getenv(metaclient.EnvController) != "" {
		return jobProfileJSON{}, fmt.Errorf("%w (to read a stopped controller's state instead, give its --data-dir)", ctlError(err, addrFlag, tf.insecure))
	}
	dir, derr := defaultDataDir()
	if derr != nil {
		return jobProfileJSON{}, fmt.Errorf("%w; nor from a stopped controller's state: %w", ctlError(err, addrFlag, tf.insecure), derr)
	}
	v, ferr := storedProfile(dir, name)
	if ferr != nil {
		return v, fmt.Errorf("%w; nor from a stopped controller's state: %w", ctlError(err, addrFlag, tf.insecure), ferr)
	}
	why := fmt.Sprintf("no controller answered at %s (%v)", ctlAddr(addrFlag), err)
	if errors.Is(err, errNoTLS) {
		why = fmt.Sprintf("the controller at %s was not asked: %v", ctlAddr(addrFlag), err)
	}
	warn("job profile", "note: %s: showing the state of the stopped controller in %s, the next size under the default sizing policy", why, dir)
	return v, nil
}

// noController reports whether err says no controller could be asked:
// none accepted the connection, or there are no TLS credentials to ask
// one with. A controller's answer (not found, refused) is not such an
// error, nor is a TLS mismatch (a controller is there).
func noController(err error) bool {
	var answer *wire.Error
	if errors.As(err, &answer) {
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, errNoTLS)
}

// storedProfile is name's profile from the state under dir (the default
// data directory when empty), with the next size under the default policy.
func storedProfile(dir, name string) (jobProfileJSON, error) {
	p, err := readProfile(dir, name)
	if err != nil {
		return jobProfileJSON{}, err
	}
	pol := controller.DefaultPolicy() // pocket controller and pocket up size with it
	return profileView(p, &pol), nil
}

// profileView is what `pocket job profile` shows of p, the next size as
// registration under pol computes it.
func profileView(p *state.Profile, pol *controller.Policy) jobProfileJSON {
	next := pol.NextSize(p)
	v := jobProfileJSON{Name: p.Name, Updated: p.Updated, Next: nextSize{Mbps: milli(next.Mbps), Bytes: next.Bytes,
		EstimateMbps: milli(next.Estimate.Mbps), EstimateBytes: next.Estimate.Bytes, Runs: next.Estimate.Runs}, Runs: []runJSON{}}
	for _, r := range p.Runs {
		v.Runs = append(v.Runs, runJSON{Job: r.Job, Ended: r.Ended, Duration: r.Duration, PeakMbps: r.PeakMbps,
			PeakBytes: r.PeakBytes, Tier: tierName(r.Tier), AllocMbps: r.AllocMbps, AllocBytes: r.AllocBytes, Phases: nonNil(r.Phases)})
	}
	return v
}

// profileViewWire is profileView of a controller's answer: times in UTC,
// as the stored profile has them.
func profileViewWire(p *wire.JobProfile) jobProfileJSON {
	v := jobProfileJSON{Name: p.Name, Updated: p.Updated.UTC(), Next: nextSize{Mbps: milli(p.Next.Mbps), Bytes: p.Next.Bytes,
		EstimateMbps: milli(p.Next.EstimateMbps), EstimateBytes: p.Next.EstimateBytes, Runs: int(p.Next.EstimateRuns)}, Runs: []runJSON{}}
	for _, r := range p.Runs {
		phases := []state.Phase{}
		for _, ph := range r.Phases {
			phases = append(phases, state.Phase{PeakMbps: ph.PeakMbps, PeakBytes: ph.PeakBytes})
		}
		v.Runs = append(v.Runs, runJSON{Job: r.Job, Ended: r.Ended.UTC(), Duration: r.Duration, PeakMbps: r.PeakMbps,
			PeakBytes: r.PeakBytes, Tier: tierName(r.Tier), AllocMbps: r.AllocMbps, AllocBytes: r.AllocBytes, Phases: phases})
	}
	return v
}

// readProfile opens the state under dir (the default data directory when
// empty) and returns name's profile: name is a profile key or a bare job
// name one tenant alone has a profile of (controller.MatchProfile).
func readProfile(dir, name string) (*state.Profile, error) {
	if err := controller.CheckProfileArg(name); err != nil {
		return nil, err
	}
	if dir == "" {
		var err error
		if dir, err = defaultDataDir(); err != nil {
			return nil, err
		}
	}
	sdir := filepath.Join(dir, stateSubdir)
	if _, err := os.Stat(filepath.Join(sdir, state.BoltFile)); err != nil {
		return nil, fmt.Errorf("no controller state in %s (%v): give the --data-dir of pocket controller or pocket up", sdir, err)
	}
	st, err := state.OpenBolt(sdir)
	if err != nil {
		return nil, fmt.Errorf("%w (a running controller holds its state: ask it, with --controller ADDR and no --data-dir, or stop it first)", err)
	}
	defer st.Close()
	snap, err := st.Load()
	if err != nil {
		return nil, err
	}
	key, theirs := controller.MatchProfile(name, func(yield func(string) bool) {
		for i := range snap.Profiles {
			if !yield(snap.Profiles[i].Name) {
				return
			}
		}
	})
	for i := range snap.Profiles {
		if snap.Profiles[i].Name == key {
			return &snap.Profiles[i], nil
		}
	}
	if len(theirs) > 1 {
		return nil, fmt.Errorf("job name %q has profiles of %d tenants in %s: give one of %s", name, len(theirs), sdir, controller.ShownNames(theirs))
	}
	return nil, fmt.Errorf("no profile of job name %q in %s: a profile is recorded when a job of the name ends (%d name(s) have one%s)",
		name, sdir, len(snap.Profiles), profileNames(snap.Profiles, 10))
}

// profileNames lists up to most profile names, for an error message.
func profileNames(ps []state.Profile, most int) string {
	if len(ps) == 0 {
		return ""
	}
	names := make([]string, 0, min(len(ps), most))
	for _, p := range ps[:min(len(ps), most)] {
		names = append(names, p.Name)
	}
	more := ""
	if len(ps) > most {
		more = ", ..."
	}
	return ": " + strings.Join(names, ", ") + more
}

// printProfile prints v. A next bandwidth above the estimate is the
// policy's floor, one lambda's (see controller.Policy.NextSize).
func printProfile(v jobProfileJSON) {
	fmt.Printf("job name %s: %d run(s), the last ended %s\n", v.Name, len(v.Runs), v.Updated.Local().Format(time.RFC3339))
	floor := ""
	if v.Next.Mbps > v.Next.EstimateMbps {
		floor = fmt.Sprintf(", raised to one lambda's %.0f Mb/s", v.Next.Mbps)
	}
	fmt.Printf("next job of the name without size hints asks for %.0f Mb/s, %s (%.1f x the runs' peaks, newest weighted most: %.0f Mb/s%s);\n"+
		"it is allotted at most what the nodes it is placed on have room for: under the autoscaler's band high, or their whole\n"+
		"bandwidth without an autoscaler (pocket status shows its ALLOC)\n",
		v.Next.Mbps, units.FormatSize(v.Next.Bytes), controller.ProfileHeadroom, v.Next.EstimateMbps, floor)
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "JOB\tENDED\tDURATION\tTIER\tPEAK Mb/s\tPEAK SIZE\tALLOC Mb/s\tPEAK Mb/s BY QUARTER")
	unseen := false
	for _, r := range v.Runs {
		q, none := quarters(r.Phases)
		unseen = unseen || none
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%.0f\t%s\t%.0f\t%s\n", r.Job, r.Ended.Local().Format(time.RFC3339), r.Duration.Round(time.Second),
			r.Tier, r.PeakMbps, units.FormatSize(r.PeakBytes), r.AllocMbps, q)
	}
	w.Flush()
	if unseen {
		fmt.Println("-: nothing measured in that quarter (no heartbeat sampled it, or the job neither moved data nor held bytes then)")
	}
}

// quarters is the PEAK Mb/s BY QUARTER column of a run: each phase's
// peak, or "-" for a phase with no figure at all (no bandwidth and no
// bytes: a run of a few seconds has quarters no 1 s heartbeat sampled,
// which printed 0 Mb/s as if measured idle, a new user's trial), and
// whether any phase was such.
func quarters(phases []state.Phase) (string, bool) {
	q := make([]string, len(phases))
	none := false
	for i, ph := range phases {
		if ph.PeakMbps == 0 && ph.PeakBytes == 0 {
			q[i], none = "-", true
			continue
		}
		q[i] = fmt.Sprintf("%.0f", ph.PeakMbps)
	}
	return strings.Join(q, " "), none
}

// milli rounds a bandwidth to 0.001 Mb/s for the profile's output: 1.1 x
// 3000 printed 3300.0000000000005 in --json (a new user's trial).
func milli(mbps float64) float64 { return math.Round(mbps*1000) / 1000 }
