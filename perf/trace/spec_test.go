package trace

import (
	"math"
	"strings"
	"testing"
	"time"
)

func nan() float64 { return math.NaN() }

func TestStreamRisesAndFalls(t *testing.T) {
	s := Stream()
	if err := s.check(); err != nil {
		t.Fatal(err)
	}
	if s.Run != 125*time.Second || !s.Follow || s.Kind != Video {
		t.Fatalf("stream: %+v", s)
	}
	for _, c := range []struct {
		at   time.Duration
		mbps float64
	}{{-time.Second, 0}, {0, 100}, {69 * time.Second, 100}, {70 * time.Second, 400}, {85 * time.Second, 1000},
		{99 * time.Second, 1000}, {100 * time.Second, 400}, {110 * time.Second, 100}, {124 * time.Second, 100}, {125 * time.Second, 0}} {
		if got := s.MbpsAt(c.at); got != c.mbps {
			t.Errorf("MbpsAt(%v) = %v, want %v", c.at, got, c.mbps)
		}
	}
	// Registered well below its peak: only growth while it runs serves it.
	if s.PeakMbps() != 1000 || float64(4*s.Hints.PeakMbps) > s.PeakMbps() {
		t.Fatalf("peak %v, hint %v", s.PeakMbps(), s.Hints.PeakMbps)
	}
}

func TestElasticTrace(t *testing.T) {
	jobs, err := Named("elastic")
	if err != nil {
		t.Fatal(err)
	}
	if err := checkJobs(jobs); err != nil {
		t.Fatal(err)
	}
	if got := lengthOf(jobs); got != 180*time.Second {
		t.Fatalf("length %v", got)
	}
	var stream, sort2 JobSpec
	followed := 0
	for _, j := range jobs {
		switch j.Name {
		case "stream":
			stream = j
		case "sort2":
			sort2 = j
		}
		if j.Follow {
			followed++
		}
	}
	if followed != 1 || !stream.Follow {
		t.Fatalf("followed %d, stream %+v", followed, stream)
	}
	// The stream's rise starts after sort2 has ended, so the cluster's
	// peak stays that of issue 5's trace.
	rise := stream.Arrive + stream.Phases[0].For
	if rise < sort2.Arrive+sort2.Run {
		t.Fatalf("stream rises at %v, before sort2 ends at %v", rise, sort2.Arrive+sort2.Run)
	}
	pocketJobs, _ := Named("pocket")
	if len(pocketJobs) != len(jobs)-1 {
		t.Fatalf("pocket trace has %d jobs, elastic %d", len(pocketJobs), len(jobs))
	}
	if _, err := Named("nope"); err == nil || !strings.Contains(err.Error(), "elastic, pocket") {
		t.Fatalf("unknown trace: %v", err)
	}
}

func TestCheckJobs(t *testing.T) {
	ok := func() JobSpec {
		return JobSpec{Name: "j", Kind: Sort, Run: time.Second, Mbps: 10, ValueSize: 64, Keys: 4}
	}
	cases := []struct {
		name string
		edit func(*JobSpec)
		want string
	}{
		{"no name", func(s *JobSpec) { s.Name = "" }, "no name"},
		{"kind", func(s *JobSpec) { s.Kind = "scan" }, `kind "scan"`},
		{"value size", func(s *JobSpec) { s.ValueSize = 12 }, "multiple of 8"},
		{"keys", func(s *JobSpec) { s.Keys = 0 }, "keys 0"},
		{"run", func(s *JobSpec) { s.Run = 0 }, "positive run"},
		{"rate", func(s *JobSpec) { s.Mbps = -1 }, "load >= 0"},
		{"phase", func(s *JobSpec) { s.Run, s.Phases = 0, []Phase{{For: 0, Mbps: 5}} }, "phase 0 is 0s"},
		{"phases sum", func(s *JobSpec) { s.Phases = []Phase{{For: 2 * time.Second, Mbps: 5}} }, "add up to 2s"},
	}
	for _, c := range cases {
		s := ok()
		c.edit(&s)
		err := checkJobs([]JobSpec{s})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	if err := checkJobs([]JobSpec{ok(), ok()}); err == nil || !strings.Contains(err.Error(), "two jobs named j") {
		t.Errorf("duplicate names: %v", err)
	}
	if err := checkJobs(nil); err == nil {
		t.Error("no jobs: no error")
	}
	jobs := []JobSpec{ok()}
	jobs[0].Run, jobs[0].Phases = 0, []Phase{{For: time.Second, Mbps: 5}, {For: 2 * time.Second}}
	if err := checkJobs(jobs); err != nil || jobs[0].Run != 3*time.Second {
		t.Fatalf("run from phases: %v, %v", err, jobs[0].Run)
	}
}

func TestReadBackRate(t *testing.T) {
	s := Stream()
	if got := s.readBackMbps(); got != 100 {
		t.Fatalf("stream reads back at %v Mb/s, want its last phase's 100", got)
	}
	s.Phases = append(s.Phases, Phase{For: time.Second})
	if got := s.readBackMbps(); got != 1000 {
		t.Fatalf("after an idle phase: %v Mb/s, want the peak 1000", got)
	}
	if got := Pocket()[0].readBackMbps(); got != 600 {
		t.Fatalf("sort1 reads back at %v Mb/s", got)
	}
}
