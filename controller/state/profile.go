package state

import (
	"fmt"
	"time"
)

// Bounds of a Profile record, checked by Apply so that no record grows
// without bound whatever the controller's configuration: a profile keeps
// at most MaxProfileRuns runs, a run at most MaxRunPhases phases. The
// number of profiles is bounded by the controller (Config.MaxProfiles,
// evicting the profile updated longest ago).
const (
	MaxProfileRuns = 32
	MaxRunPhases   = 16
)

// Profile is what the last runs of the jobs of one name used, newest run
// first. Updated is when the newest run ended (UTC); the controller evicts
// the profile with the oldest Updated when it holds too many names.
type Profile struct {
	Name    string    `json:"name"`
	Updated time.Time `json:"updated"`
	Runs    []Run     `json:"runs"`
}

// Run is one job's use of resources over its life, as the controller
// attributed the nodes' heartbeat figures to it: peak bandwidth in Mb/s
// (megabits a second; the larger of rx and tx), peak bytes stored on its
// tier, its duration (milliseconds in JSON), and the same peaks per phase
// (equal slices of its life, first to last). Alloc* are what the job was
// given, Tier the wire.Tier number it ran on.
type Run struct {
	Job        string        `json:"job"`
	Ended      time.Time     `json:"ended"`
	Duration   time.Duration `json:"duration_ns"`
	PeakMbps   float64       `json:"peak_mbps"`
	PeakBytes  int64         `json:"peak_bytes"`
	Tier       uint8         `json:"tier"`
	AllocMbps  float64       `json:"alloc_mbps"`
	AllocBytes int64         `json:"alloc_bytes"`
	Phases     []Phase       `json:"phases,omitempty"`
}

// Phase is the peak use of one slice of a run's life.
type Phase struct {
	PeakMbps  float64 `json:"peak_mbps"`
	PeakBytes int64   `json:"peak_bytes"`
}

// check refuses a record beyond the bounds, or without a name.
func (p *Profile) check() error {
	switch {
	case p.Name == "":
		return fmt.Errorf("state: profile without a name")
	case len(p.Runs) > MaxProfileRuns:
		return fmt.Errorf("state: profile %q has %d runs, over the %d a profile keeps", p.Name, len(p.Runs), MaxProfileRuns)
	}
	for i := range p.Runs {
		if n := len(p.Runs[i].Phases); n > MaxRunPhases {
			return fmt.Errorf("state: profile %q: run %s has %d phases, over %d", p.Name, p.Runs[i].Job, n, MaxRunPhases)
		}
	}
	return nil
}
