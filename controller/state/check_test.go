package state

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestBoltRecordOutOfRange: a record that decodes but holds a value no
// controller writes (a hostile trial's "alloc_bytes": -999, which then
// failed every status reply without naming the job; "tier": 7; a node at
// port 99999) is refused at Load with a CorruptError naming the record,
// the field and the value, with the corruption's advice. Before, it
// loaded.
func TestBoltRecordOutOfRange(t *testing.T) {
	okJob := func() Job {
		return Job{ID: "j-1", Name: "j", Tier: 1, Epoch: 1, State: JobLive, Gen: 1, Created: time.Unix(1, 0).UTC(),
			AllocMbps: 10, AllocBytes: 1 << 20, Nodes: []MapWeight{{Addr: "127.0.0.1:7001", Weight: 1}}}
	}
	okNode := func() Node {
		return Node{Addr: "127.0.0.1:7001", State: 1, Tiers: []NodeTier{{Kind: 1, CapacityBytes: 1 << 30, Mbps: 1000}}}
	}
	for _, tc := range []struct {
		name  string
		job   func(*Job)
		node  func(*Node)
		wants []string
	}{
		{name: "negative alloc_bytes", job: func(j *Job) { j.AllocBytes = -999 }, wants: []string{`job "j-1"`, "alloc_bytes", "-999"}},
		{name: "tier 7", job: func(j *Job) { j.Tier = 7 }, wants: []string{`job "j-1"`, "tier", "7"}},
		{name: "map node port 99999", job: func(j *Job) { j.Nodes[0].Addr = "127.0.0.1:99999" }, wants: []string{`job "j-1"`, "nodes[0].addr", "99999"}},
		{name: "negative weight", job: func(j *Job) { j.Nodes[0].Weight = -1 }, wants: []string{`job "j-1"`, "nodes[0].weight", "-1"}},
		{name: "role 9", job: func(j *Job) { j.Nodes[0].Role = 9 }, wants: []string{`job "j-1"`, "nodes[0].role", "9"}},
		{name: "state", job: func(j *Job) { j.State = "zombie" }, wants: []string{`job "j-1"`, "state", "zombie"}},
		{name: "ended job's final map", job: func(j *Job) { j.State, j.Revoked, j.Tier = JobRevoked, time.Unix(2, 0).UTC(), 9 },
			wants: []string{`job "j-1"`, "tier", "9"}},
		{name: "node port 99999", node: func(n *Node) { n.Addr = "127.0.0.1:99999" }, wants: []string{`node "127.0.0.1:99999"`, "addr"}},
		{name: "node tier kind", node: func(n *Node) { n.Tiers[0].Kind = 7 }, wants: []string{`node "127.0.0.1:7001"`, "tiers[0].kind", "7"}},
		{name: "node negative capacity", node: func(n *Node) { n.Tiers[0].CapacityBytes = -5 }, wants: []string{"tiers[0].capacity_bytes", "-5"}},
		{name: "node state", node: func(n *Node) { n.State = 42 }, wants: []string{`node "127.0.0.1:7001"`, "state", "42"}},
		// A re-check: legal int64s past the bounds the status reply's
		// decoder holds them to started, and every status then failed.
		{name: "capacity hint past the job bound", job: func(j *Job) { j.CapacityBytes = math.MaxInt64 }, wants: []string{`job "j-1"`, "capacity_bytes", "wire.MaxJobBytes"}},
		{name: "peak hint past the job bound", job: func(j *Job) { j.PeakMbps = 1e300 }, wants: []string{`job "j-1"`, "peak_mbps", "wire.MaxJobMbps"}},
		{name: "node capacity past its bound", node: func(n *Node) { n.Tiers[0].CapacityBytes = math.MaxInt64 }, wants: []string{"tiers[0].capacity_bytes", "wire.MaxNodeBytes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, path := newBoltFile(t)
			j, n := okJob(), okNode()
			if tc.job != nil {
				tc.job(&j)
			}
			if tc.node != nil {
				tc.node(&n)
			}
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			jv, _ := json.Marshal(j)
			nv, _ := json.Marshal(n)
			err = db.Update(func(tx *bolt.Tx) error {
				if err := tx.Bucket(bucketJobs).Put([]byte(j.ID), jv); err != nil {
					return err
				}
				return tx.Bucket(bucketNodes).Put([]byte(n.Addr), nv)
			})
			db.Close()
			if err != nil {
				t.Fatal(err)
			}
			openCorrupt(t, dir, path)
			s, err := OpenBolt(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			_, err = s.Load()
			for _, w := range append(tc.wants, "fix that record", "move it aside") {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to say %q", err, w)
				}
			}
		})
	}
}

// TestRecordsInRangeLoad: the records a controller writes pass the checks,
// the forms of older builds included (a node state 0, a tombstone without
// its final map, a job state of "").
func TestRecordsInRangeLoad(t *testing.T) {
	s := &Snapshot{
		Jobs: []Job{
			{ID: "a-1", Tier: 2, State: JobLive, Nodes: []MapWeight{{Addr: "[::1]:7001", Weight: 0.5, Role: 4}, {Addr: "h:7002", Role: 2}},
				Lost: []LostNode{{Addr: "h:7003", Weight: 1}}, Undone: map[string]time.Time{"h:7002": time.Unix(1, 0)}},
			{ID: "b-2", Tier: 1},
			{ID: "c-3", State: JobRevoked, Revoked: time.Unix(1, 0)},
		},
		Nodes: []Node{{Addr: "h:7001"}, {Addr: "h:7002", State: 3, Tiers: []NodeTier{{Kind: 2}}}, {Addr: "h:7003", Gone: time.Unix(1, 0)}},
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestEtcdRecordOutOfRange: the etcd store's Load refuses a record out of
// range as the bolt store's does, naming the record, the field and the
// value, and saying to fix it or move the keys aside.
func TestEtcdRecordOutOfRange(t *testing.T) {
	runEtcd(t, func(t *testing.T, s Store, reopen func() Store) {
		j := testJob("j-1", 1)
		j.AllocBytes = -999
		if err := s.Apply(&Batch{PutJobs: []Job{j}, Meta: &Meta{Seq: 2, Rev: 1001}}); err != nil {
			t.Fatal(err)
		}
		_, err := reopen().Load()
		for _, w := range []string{"corrupted", `job "j-1"`, "alloc_bytes", "-999", "fix", "aside"} {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("err = %v, want it to say %q", err, w)
			}
		}
	})
}
