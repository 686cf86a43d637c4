package trace

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pocketstore/pocket/pocket"
)

// Kind is a job's access pattern.
type Kind string

// Job kinds.
const (
	Sort  Kind = "sort"  // puts, then gets of what was put
	Video Kind = "video" // puts and gets at once
)

// Phase is a stretch of a job's run at one offered load.
type Phase struct {
	For  time.Duration // trace time
	Mbps float64       // offered load, megabits per wall second (0: idle)
}

// JobSpec is one job of a trace.
type JobSpec struct {
	Name   string
	Kind   Kind
	Arrive time.Duration // trace time of registration
	// Run is the trace time until deregistration. With Phases it may be
	// left zero: it is then their sum (and must equal it otherwise).
	Run time.Duration
	// Mbps is the offered load of a job without Phases, megabits per
	// wall second of puts and gets together (a node measures max(rx, tx),
	// so about half of a video job's load shows on its nodes).
	Mbps float64
	// Phases, when set, vary the offered load over the run, in order.
	Phases    []Phase
	ValueSize int          // bytes per value, a multiple of 8
	Keys      int          // key space (wraps): Keys x ValueSize bytes at most
	Hints     pocket.Hints // what the job tells the controller
	// Follow marks a job whose nodes the report shows over time.
	Follow bool
}

// phases returns the job's run as phases: its Phases, or one phase of
// Run at Mbps.
func (s *JobSpec) phases() []Phase {
	if len(s.Phases) > 0 {
		return s.Phases
	}
	return []Phase{{For: s.Run, Mbps: s.Mbps}}
}

// MbpsAt returns the load the job offers at trace time t after its
// arrival: 0 before it arrives and after it ends.
func (s *JobSpec) MbpsAt(t time.Duration) float64 {
	if t < 0 {
		return 0
	}
	for _, p := range s.phases() {
		if t < p.For {
			return p.Mbps
		}
		t -= p.For
	}
	return 0
}

// PeakMbps is the highest load the job offers.
func (s *JobSpec) PeakMbps() float64 {
	peak := 0.0
	for _, p := range s.phases() {
		peak = max(peak, p.Mbps)
	}
	return peak
}

// readBackMbps is the rate of the read-back at the job's end: its last
// phase's load, or its peak when that phase is idle.
func (s *JobSpec) readBackMbps() float64 {
	ps := s.phases()
	if last := ps[len(ps)-1].Mbps; last > 0 {
		return last
	}
	return s.PeakMbps()
}

// check fills Run from Phases and reports a spec that cannot run.
func (s *JobSpec) check() error {
	if s.Name == "" {
		return errors.New("a job has no name")
	}
	if s.Kind != Sort && s.Kind != Video {
		return fmt.Errorf("job %s: kind %q is neither %q nor %q", s.Name, s.Kind, Sort, Video)
	}
	if s.Arrive < 0 || s.ValueSize <= 0 || s.ValueSize%8 != 0 || s.Keys <= 0 {
		return fmt.Errorf("job %s: arrival %v, value size %d B, keys %d: want arrival >= 0, a value size that is a positive multiple of 8, keys > 0",
			s.Name, s.Arrive, s.ValueSize, s.Keys)
	}
	if len(s.Phases) > 0 {
		if err := s.checkPhases(); err != nil {
			return err
		}
	}
	if s.Run <= 0 || s.Mbps < 0 {
		return fmt.Errorf("job %s: run %v at %.0f Mb/s: want a positive run and a load >= 0", s.Name, s.Run, s.Mbps)
	}
	return nil
}

func (s *JobSpec) checkPhases() error {
	var sum time.Duration
	for i, p := range s.Phases {
		if p.For <= 0 || p.Mbps < 0 {
			return fmt.Errorf("job %s: phase %d is %v at %.0f Mb/s: want a positive length and a load >= 0", s.Name, i, p.For, p.Mbps)
		}
		sum += p.For
	}
	if s.Run == 0 {
		s.Run = sum
	}
	if s.Run != sum {
		return fmt.Errorf("job %s: run %v but its phases add up to %v", s.Name, s.Run, sum)
	}
	return nil
}

// checkJobs checks every spec (filling Run from phases) and that names are
// unique: samples tell jobs apart by name.
func checkJobs(jobs []JobSpec) error {
	if len(jobs) == 0 {
		return errors.New("trace: no jobs")
	}
	seen := map[string]bool{}
	for i := range jobs {
		if err := jobs[i].check(); err != nil {
			return fmt.Errorf("trace: %w", err)
		}
		if seen[jobs[i].Name] {
			return fmt.Errorf("trace: two jobs named %s", jobs[i].Name)
		}
		seen[jobs[i].Name] = true
	}
	return nil
}

const valueSize = 256 << 10

// Pocket returns issue 5's trace: a sort, a video pipeline that overlaps
// its end, a quiet spell, another sort; 120 trace seconds.
func Pocket() []JobSpec {
	return []JobSpec{
		{Name: "sort1", Kind: Sort, Arrive: 10 * time.Second, Run: 25 * time.Second, Mbps: 600, ValueSize: valueSize, Keys: 256,
			Hints: pocket.Hints{PeakMbps: 600, CapacityBytes: 256 * valueSize}},
		{Name: "video", Kind: Video, Arrive: 30 * time.Second, Run: 35 * time.Second, Mbps: 200, ValueSize: valueSize, Keys: 128,
			Hints: pocket.Hints{PeakMbps: 200, CapacityBytes: 128 * valueSize}},
		{Name: "sort2", Kind: Sort, Arrive: 85 * time.Second, Run: 20 * time.Second, Mbps: 600, ValueSize: valueSize, Keys: 256,
			Hints: pocket.Hints{PeakMbps: 600, CapacityBytes: 256 * valueSize}},
	}
}

// Stream is the long job of the Elastic trace: a video-like pipeline
// that lives 125 trace seconds from t=40, quiet at 100 Mb/s, then rising
// through 400 to 1,000 Mb/s and falling back. It registers with hints of
// its quiet load, so only the growth of its own map while it runs can
// spread its peak over more nodes; its nodes are followed in the report.
func Stream() JobSpec {
	return JobSpec{Name: "stream", Kind: Video, Arrive: 40 * time.Second, ValueSize: valueSize, Keys: 256, Follow: true,
		Phases: []Phase{
			{For: 70 * time.Second, Mbps: 100},
			{For: 10 * time.Second, Mbps: 400},
			{For: 20 * time.Second, Mbps: 1000},
			{For: 10 * time.Second, Mbps: 400},
			{For: 15 * time.Second, Mbps: 100},
		},
		Hints: pocket.Hints{PeakMbps: 100, CapacityBytes: 256 * valueSize}}
}

// Elastic returns the Pocket trace with the long Stream job added: its
// peak (trace seconds 120-140) falls after sort2 has ended, so the
// cluster's peak stays that of sort1 and the video pipeline; 180 trace
// seconds.
func Elastic() []JobSpec {
	return append(Pocket(), Stream())
}

var named = map[string]func() []JobSpec{"pocket": Pocket, "elastic": Elastic}

// Names lists the named traces, sorted.
func Names() []string {
	out := make([]string, 0, len(named))
	for n := range named {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Named returns a named trace's jobs: "elastic" (Elastic) or "pocket"
// (Pocket).
func Named(name string) ([]JobSpec, error) {
	f, ok := named[name]
	if !ok {
		return nil, fmt.Errorf("trace: no trace named %q (have %s)", name, strings.Join(Names(), ", "))
	}
	return f(), nil
}
