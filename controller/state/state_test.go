package state

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// stores runs f on every Store implementation; reopen returns a fresh
// handle on the same records (a restart).
func stores(t *testing.T, f func(t *testing.T, s Store, reopen func() Store)) {
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
	t.Run("etcd", func(t *testing.T) { runEtcd(t, f) })
}

func testJob(id string, epoch uint64) Job {
	return Job{ID: id, Name: strings.Split(id, "-")[0], Lambdas: 4, Tier: 1, Epoch: epoch,
		Nodes:     []MapWeight{{Addr: "127.0.0.1:9001", Weight: 0.25}, {Addr: "127.0.0.1:9002", Weight: 0.75}},
		AllocMbps: 2400, AllocBytes: 1 << 30, Gen: 1000 + epoch, Created: time.UnixMilli(1_700_000_000_000).UTC(),
		Expires: time.UnixMilli(1_700_000_360_000).UTC(), Client: "10.0.0.1", State: JobLive}
}

func TestStoreRoundTrip(t *testing.T) {
	stores(t, func(t *testing.T, s Store, reopen func() Store) {
		snap, err := s.Load()
		if err != nil || !snap.Empty {
			t.Fatalf("new store: %+v, %v; want empty", snap, err)
		}
		node := Node{Addr: "127.0.0.1:9001", State: 2, Tiers: []NodeTier{{Kind: 1, CapacityBytes: 1 << 30, Mbps: 8000}},
			Cores: 8, Incarnation: 1<<63 + 7, DrainDeadline: time.UnixMilli(1_700_000_120_000).UTC()}
		if err := s.Apply(&Batch{PutJobs: []Job{testJob("a-1", 1), testJob("b-2", 3)}, PutNodes: []Node{node},
			Meta: &Meta{Seq: 3, Rev: 1003}}); err != nil {
			t.Fatal(err)
		}
		if err := s.Apply(&Batch{DeleteJobs: []string{"a-1", "never-9"}, PutJobs: []Job{testJob("b-2", 4)},
			DeleteNodes: []string{"127.0.0.1:9999"}, Meta: &Meta{Seq: 3, Rev: 1004}}); err != nil {
			t.Fatal(err)
		}
		snap, err = reopen().Load()
		if err != nil {
			t.Fatal(err)
		}
		want := &Snapshot{Jobs: []Job{testJob("b-2", 4)}, Nodes: []Node{node}, Meta: Meta{Seq: 3, Rev: 1004}}
		if !reflect.DeepEqual(snap, want) {
			t.Fatalf("after restart:\n got %+v\nwant %+v", snap, want)
		}
	})
}

func TestBoltNewerFormat(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenBolt(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := bolt.Open(filepath.Join(dir, BoltFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyFormat, []byte("7")) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = OpenBolt(dir)
	var fe *FormatError
	if !errors.Is(err, ErrNewerFormat) || !errors.As(err, &fe) || fe.Stored != 7 || fe.Known != FormatVersion {
		t.Fatalf("open of a version-7 store: %v; want a FormatError 7 > %d", err, FormatVersion)
	}
	if msg := err.Error(); !strings.Contains(msg, "version 7") || !strings.Contains(msg, "version 1") {
		t.Fatalf("error %q should name both versions", msg)
	}
}

func TestCheckFormat(t *testing.T) {
	for _, v := range []string{"", "x", "0", "-1"} {
		if err := CheckFormat("s", v); err == nil || errors.Is(err, ErrNewerFormat) {
			t.Errorf("CheckFormat(%q) = %v; want a not-a-version error", v, err)
		}
	}
	if err := CheckFormat("s", "1"); err != nil {
		t.Errorf("CheckFormat(1) = %v", err)
	}
}

func TestBoltSecondOpenRefused(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenBolt(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := OpenBolt(dir); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open: %v; want in use", err)
	}
}

func TestMemoryFail(t *testing.T) {
	m := NewMemory()
	boom := errors.New("disk gone")
	m.SetFail(boom)
	if err := m.Apply(&Batch{Meta: &Meta{Seq: 1}}); !errors.Is(err, boom) {
		t.Fatalf("Apply = %v; want %v", err, boom)
	}
	if snap, _ := m.Load(); !snap.Empty {
		t.Fatal("a failed Apply wrote")
	}
}
