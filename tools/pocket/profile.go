package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/internal/units"
)

// jobProfileJSON is the --json form of `pocket job profile`: the stored
// profile (runs newest first) and what the next job of the name is
// allotted when registered without size hints.
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
	Phases     []state.Phase `json:"phases,omitempty"`
}

// runJobProfile shows a job name's profile from a controller's state
// directory (DIR/controller of --data-dir). The state is a bbolt file
// that a running controller holds locked, so this reads a stopped
// controller's state; asking a running one needs a control-plane call
// that does not exist yet.
func runJobProfile(args []string) int {
	fs := newFlagSet("job profile")
	data := fs.String("data-dir", "", "data directory of the stopped pocket controller or pocket up whose state to read (DIR/"+stateSubdir+")\n(default $"+envDataDir+", else ~/.pocket)")
	asJSON := fs.Bool("json", false, "print a JSON object with the runs and the next size")
	pos, code, ok := parseFlags(fs, args, 1, 1)
	if !ok {
		return code
	}
	p, err := readProfile(*data, pos[0])
	if err != nil {
		return fail("job profile: %v", err)
	}
	pol := controller.DefaultPolicy() // pocket controller and pocket up size with it
	v := profileView(p, &pol)
	if *asJSON {
		return printJSON(v)
	}
	printProfile(v, pol.PerLambdaMbps)
	return 0
}

// profileView is what `pocket job profile` shows of p, the next size as
// registration under pol computes it.
func profileView(p *state.Profile, pol *controller.Policy) jobProfileJSON {
	next := pol.NextSize(p)
	v := jobProfileJSON{Name: p.Name, Updated: p.Updated, Next: nextSize{Mbps: next.Mbps, Bytes: next.Bytes,
		EstimateMbps: next.Estimate.Mbps, EstimateBytes: next.Estimate.Bytes, Runs: next.Estimate.Runs}}
	for _, r := range p.Runs {
		v.Runs = append(v.Runs, runJSON{Job: r.Job, Ended: r.Ended, Duration: r.Duration, PeakMbps: r.PeakMbps,
			PeakBytes: r.PeakBytes, Tier: tierName(r.Tier), AllocMbps: r.AllocMbps, AllocBytes: r.AllocBytes, Phases: r.Phases})
	}
	return v
}

// readProfile opens the state under dir (the default data directory when
// empty) and returns name's profile.
func readProfile(dir, name string) (*state.Profile, error) {
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
		return nil, fmt.Errorf("%w (a running controller holds its state: stop it first)", err)
	}
	defer st.Close()
	snap, err := st.Load()
	if err != nil {
		return nil, err
	}
	for i := range snap.Profiles {
		if snap.Profiles[i].Name == name {
			return &snap.Profiles[i], nil
		}
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

// printProfile prints v; perLambda is the policy's floor (Mb/s) on a
// learned bandwidth.
func printProfile(v jobProfileJSON, perLambda float64) {
	fmt.Printf("job name %s: %d run(s), the last ended %s\n", v.Name, len(v.Runs), v.Updated.Local().Format(time.RFC3339))
	floor := ""
	if v.Next.Mbps > v.Next.EstimateMbps {
		floor = fmt.Sprintf(", raised to one lambda's %.0f Mb/s", perLambda)
	}
	fmt.Printf("next job of the name without size hints: %.0f Mb/s, %s (%.1f x the runs' peaks, newest weighted most: %.0f Mb/s%s)\n",
		v.Next.Mbps, units.FormatSize(v.Next.Bytes), controller.ProfileHeadroom, v.Next.EstimateMbps, floor)
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "JOB\tENDED\tDURATION\tTIER\tPEAK Mb/s\tPEAK SIZE\tALLOC Mb/s\tPEAK Mb/s BY QUARTER")
	for _, r := range v.Runs {
		q := make([]string, len(r.Phases))
		for i, ph := range r.Phases {
			q[i] = fmt.Sprintf("%.0f", ph.PeakMbps)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%.0f\t%s\t%.0f\t%s\n", r.Job, r.Ended.Local().Format(time.RFC3339), r.Duration.Round(time.Second),
			r.Tier, r.PeakMbps, units.FormatSize(r.PeakBytes), r.AllocMbps, strings.Join(q, " "))
	}
	w.Flush()
}
