package state

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// profileStores runs f over the memory and bolt stores, as stores (in
// state_test.go) does. The etcd store is left out until its Apply and
// Load carry profiles (etcd.go's batchOps, etcd_load.go's add, apply and
// snapshot, under a profiles/ key directory); then these tests move to
// stores.
func profileStores(t *testing.T, f func(t *testing.T, s Store, reopen func() Store)) {
	t.Run("memory", func(t *testing.T) {
		m := NewMemory()
		f(t, m, func() Store { return m })
	})
	t.Run("bolt", func(t *testing.T) {
		dir := t.TempDir()
		s, err := OpenBolt(dir)
		if err != nil {
			t.Fatal(err)
		}
		cur := s
		t.Cleanup(func() { cur.Close() })
		f(t, s, func() Store {
			cur.Close()
			n, err := OpenBolt(dir)
			if err != nil {
				t.Fatal(err)
			}
			cur = n
			return n
		})
	})
}

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
	profileStores(t, testProfileRoundTrip)
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
	profileStores(t, testProfileBounds)
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
