package state

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func testProfile(name string, runs int) Profile {
	p := Profile{Name: name, Updated: time.UnixMilli(1_700_000_500_000).UTC()}
	for i := 0; i < runs; i++ {
		p.Runs = append(p.Runs, Run{Job: name + "-" + strings.Repeat("1", i+1), Ended: time.UnixMilli(1_700_000_500_000 - int64(i)*60_000).UTC(),
			Duration: 42 * time.Second, PeakMbps: 3000 + float64(i), PeakBytes: 5 << 30, Tier: 2, AllocMbps: 16000,
			Phases: []Phase{{PeakMbps: 100, PeakBytes: 1 << 20}, {PeakMbps: 3000, PeakBytes: 5 << 30}}})
	}
	return p
}

func TestProfileRoundTrip(t *testing.T) {
	stores(t, testProfileRoundTrip)
}

func testProfileRoundTrip(t *testing.T, s Store, reopen func() Store) {
	if err := s.Apply(&Batch{PutProfiles: []Profile{testProfile("sort", 2), testProfile("video", 1)}}); err != nil {
		t.Fatal(err)
	}
	snap, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if snap.Empty {
		t.Fatal("a store holding profiles loads as empty")
	}
	if err := s.Apply(&Batch{PutProfiles: []Profile{testProfile("sort", 3)}, DeleteProfiles: []string{"video", "never"},
		PutJobs: []Job{testJob("a-1", 1)}, Meta: &Meta{Seq: 2, Rev: 1001}}); err != nil {
		t.Fatal(err)
	}
	snap, err = reopen().Load()
	if err != nil {
		t.Fatal(err)
	}
	want := &Snapshot{Jobs: []Job{testJob("a-1", 1)}, Profiles: []Profile{testProfile("sort", 3)}, Meta: Meta{Seq: 2, Rev: 1001}}
	if !reflect.DeepEqual(snap, want) {
		t.Fatalf("after restart:\n got %+v\nwant %+v", snap, want)
	}
}

func TestProfileBounds(t *testing.T) {
	stores(t, testProfileBounds)
}

// testProfileBounds: a profile beyond the bounds, or without a name, is
// refused and the batch holding it writes nothing.
func testProfileBounds(t *testing.T, s Store, reopen func() Store) {
	long := testProfile("long", 1)
	long.Runs[0].Phases = make([]Phase, MaxRunPhases+1)
	for _, p := range []Profile{testProfile("many", MaxProfileRuns+1), long, testProfile("", 1)} {
		err := s.Apply(&Batch{PutProfiles: []Profile{p}, PutJobs: []Job{testJob("b-2", 1)}})
		if err == nil || !strings.Contains(err.Error(), "profile") {
			t.Errorf("profile %q with %d runs: Apply = %v; want a refusal naming the profile", p.Name, len(p.Runs), err)
		}
	}
	s = reopen()
	snap, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Jobs) != 0 || len(snap.Profiles) != 0 {
		t.Fatalf("refused batches wrote: %+v", snap)
	}
	if err := s.Apply(&Batch{PutProfiles: []Profile{testProfile("full", MaxProfileRuns)}}); err != nil {
		t.Fatalf("a profile at the bound: %v", err)
	}
}

// TestEtcdJournaledProfiles: profiles in a batch too large for one Txn go
// through the journal; a controller that dies after the commit, before
// the copy, leaves a journal whose profile puts and deletes Load applies,
// and the next Apply finishes.
func TestEtcdJournaledProfiles(t *testing.T) {
	cli, open := smallTxns(t)
	s := open()
	if err := s.Apply(&Batch{PutProfiles: []Profile{testProfile("video", 1), testProfile("sort", 1)}}); err != nil {
		t.Fatal(err)
	}
	crash := errors.New("crash")
	s.failAt = func(at string) error {
		if at == "copy" {
			return crash
		}
		return nil
	}
	var want []Profile
	for i := 0; i < 20; i++ {
		want = append(want, testProfile(fmt.Sprintf("p-%02d", i), 1))
	}
	if err := s.Apply(&Batch{PutProfiles: want, DeleteProfiles: []string{"video"}}); !errors.Is(err, crash) {
		t.Fatalf("Apply = %v; want the crash", err)
	}
	want = append(want, testProfile("sort", 1)) // "sort" sorts after "p-19"
	s2 := open()
	for _, when := range []string{"with the journal committed", "after the next Apply"} {
		snap, err := s2.Load()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(snap.Profiles, want) || snap.Empty {
			names := make([]string, len(snap.Profiles))
			for i, p := range snap.Profiles {
				names[i] = p.Name
			}
			t.Fatalf("%s: profiles %v (empty %v); want p-00..p-19 and sort, video deleted", when, names, snap.Empty)
		}
		if err := s2.Apply(&Batch{Meta: &Meta{Seq: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	noJournalLeft(t, cli)
}

// TestTraceRoundTrip: a live job's record carries its run's trace through
// every store and a reopen; a record without one (as written before
// traces were stored) loads with none.
func TestTraceRoundTrip(t *testing.T) {
	stores(t, func(t *testing.T, s Store, reopen func() Store) {
		traced, old := testJob("sort-1", 1), testJob("video-2", 1)
		traced.Trace = &Trace{Start: time.UnixMilli(1_700_000_000_000).UTC(), Width: 2 * time.Second,
			Peak: Phase{PeakMbps: 6000, PeakBytes: 20e9}, Buckets: []Phase{{PeakMbps: 100}, {}, {PeakMbps: 6000, PeakBytes: 20e9}}, Samples: 7}
		if err := s.Apply(&Batch{PutJobs: []Job{traced, old}}); err != nil {
			t.Fatal(err)
		}
		snap, err := reopen().Load()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]Job{}
		for _, j := range snap.Jobs {
			got[j.ID] = j
		}
		if !reflect.DeepEqual(got["sort-1"].Trace, traced.Trace) {
			t.Errorf("trace after a reopen: %+v; want %+v", got["sort-1"].Trace, traced.Trace)
		}
		if tr := got["video-2"].Trace; tr != nil {
			t.Errorf("a record stored without a trace loads with %+v", tr)
		}
	})
}

// TestTraceSanitize: a trace's figures are clamped into a job's bounds,
// its buckets cut to MaxTraceBuckets, a negative width or count made 0.
func TestTraceSanitize(t *testing.T) {
	tr := Trace{Width: -1, Samples: -2, Peak: Phase{PeakMbps: -5, PeakBytes: -1}, Buckets: make([]Phase, MaxTraceBuckets+10)}
	if n := tr.Sanitize(); n != 5 {
		t.Errorf("Sanitize changed %d figures; want 5", n)
	}
	if tr.Width != 0 || tr.Samples != 0 || tr.Peak != (Phase{}) || len(tr.Buckets) != MaxTraceBuckets {
		t.Errorf("sanitized trace: width %v, samples %d, peak %+v, %d buckets", tr.Width, tr.Samples, tr.Peak, len(tr.Buckets))
	}
	if n := tr.Sanitize(); n != 0 {
		t.Errorf("a sanitized trace changed again: %d figures", n)
	}
}
