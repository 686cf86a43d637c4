package state

import (
	"context"
	"errors"
	"fmt"
	"path"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pocketstore/pocket/controller/leader"
	"github.com/pocketstore/pocket/internal/etcdtest"
)

// elect makes a candidate on cli win the election and returns its term.
func elect(t *testing.T, cli *clientv3.Client, addr string) (*leader.Candidate, *leader.Term) {
	t.Helper()
	c, err := leader.New(leader.Config{Client: cli, Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	term, err := c.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return c, term
}

// runEtcd runs a store suite body (the f of stores) on an etcd Store on a
// real etcd, fenced by an elected term; reopen opens a new Store on the
// same prefix (a restart of the controller that still leads). The shared
// suite's stores calls it as its "etcd" case.
func runEtcd(t *testing.T, f func(t *testing.T, s Store, reopen func() Store)) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	cli := srv.Client(t)
	_, term := elect(t, cli, "127.0.0.1:7000")
	open := func() Store {
		s, err := OpenEtcd(cli, EtcdOptions{Fence: term, PageSize: 2})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	cur := open()
	f(t, cur, func() Store {
		cur.Close()
		cur = open()
		return cur
	})
}

// TestEtcdFencing: a controller whose lease expired while it still runs
// (a pause, a partition) cannot write once another leads.
func TestEtcdFencing(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	admin := srv.Client(t)
	cliA, cliB := srv.Client(t), srv.Client(t)
	_, termA := elect(t, cliA, "a:1")
	a, err := OpenEtcd(cliA, EtcdOptions{Fence: termA})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(&Batch{PutJobs: []Job{testJob("a-1", 1)}, Meta: &Meta{Seq: 2, Rev: 1}}); err != nil {
		t.Fatal(err)
	}
	candB, err := leader.New(leader.Config{Client: cliB, Addr: "b:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer candB.Close()
	bTerm := make(chan *leader.Term, 1)
	go func() {
		term, err := candB.Campaign(context.Background())
		if err != nil {
			t.Error(err)
		}
		bTerm <- term
	}()
	// A's lease expires as if A had stopped renewing it: revoked.
	lease, err := strconv.ParseInt(path.Base(termA.Key()), 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Revoke(context.Background(), clientv3.LeaseID(lease)); err != nil {
		t.Fatal(err)
	}
	termB := <-bTerm
	if termB == nil {
		t.FailNow()
	}
	b, err := OpenEtcd(cliB, EtcdOptions{Fence: termB})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(&Batch{PutJobs: []Job{testJob("b-2", 1)}, Meta: &Meta{Seq: 3, Rev: 2}}); err != nil {
		t.Fatal(err)
	}
	stale := &Batch{PutJobs: []Job{testJob("a-1", 9)}, Meta: &Meta{Seq: 99, Rev: 99}}
	if err := a.Apply(stale); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("deposed controller's Apply = %v; want ErrNotLeader", err)
	}
	big := &Batch{PutJobs: manyJobs(300)} // the journal path is fenced too
	if err := a.Apply(big); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("deposed controller's large Apply = %v; want ErrNotLeader", err)
	}
	snap, err := b.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Jobs) != 2 || snap.Jobs[0].Epoch != 1 || snap.Meta != (Meta{Seq: 3, Rev: 2}) {
		t.Fatalf("after the deposed controller's writes: %+v; want b's state", snap)
	}
	select {
	case <-termA.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("A's term did not end after its lease was revoked")
	}
}

func TestEtcdNotElected(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	cli := srv.Client(t)
	if _, err := OpenEtcd(cli, EtcdOptions{}); err == nil {
		t.Fatal("OpenEtcd without a fence accepted")
	}
	s, err := OpenEtcd(cli, EtcdOptions{Fence: fence{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(&Batch{Meta: &Meta{Seq: 1}}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Apply without a term = %v; want ErrNotLeader", err)
	}
	s2, _ := OpenEtcd(cli, EtcdOptions{Fence: fence{key: "/pocket/leader/x", rev: 1}})
	if err := s2.Apply(&Batch{Meta: &Meta{Seq: 1}}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Apply with a missing leader key = %v; want ErrNotLeader", err)
	}
	_, term := elect(t, cli, "a:1")
	s3, _ := OpenEtcd(cli, EtcdOptions{Fence: term})
	s3.Close()
	if err := s3.Apply(&Batch{Meta: &Meta{Seq: 1}}); err == nil || errors.Is(err, ErrNotLeader) {
		t.Fatalf("Apply after Close = %v; want a closed error", err)
	}
	if snap, err := s.Load(); err != nil || !snap.Empty {
		t.Fatalf("refused Applies wrote: %+v, %v", snap, err)
	}
}

type fence struct {
	key string
	rev int64
}

func (f fence) Key() string { return f.key }
func (f fence) Rev() int64  { return f.rev }

func TestEtcdNewerFormat(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	cli := srv.Client(t)
	if _, err := OpenEtcd(cli, EtcdOptions{Prefix: "/p", Fence: fence{}}); err != nil {
		t.Fatal(err)
	}
	if r, err := cli.Get(context.Background(), "/p/format"); err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "1" {
		t.Fatalf("format record of a new store: %v, %v; want 1", r, err)
	}
	cli.Put(context.Background(), "/p/format", "7")
	_, err := OpenEtcd(cli, EtcdOptions{Prefix: "/p", Fence: fence{}})
	var fe *FormatError
	if !errors.Is(err, ErrNewerFormat) || !errors.As(err, &fe) || fe.Stored != 7 || !strings.Contains(err.Error(), "/p/") {
		t.Fatalf("open of a version-7 store: %v; want a FormatError naming the prefix", err)
	}
	cli.Put(context.Background(), "/q/format", "x")
	if _, err := OpenEtcd(cli, EtcdOptions{Prefix: "/q", Fence: fence{}}); err == nil || errors.Is(err, ErrNewerFormat) {
		t.Fatalf("open of a store with format x: %v; want not a version", err)
	}
}

func manyJobs(n int) []Job {
	jobs := make([]Job, n)
	for i := range jobs {
		jobs[i] = testJob(fmt.Sprintf("j-%04d", i), uint64(i+1))
	}
	return jobs
}

// smallTxns starts an etcd whose Txns hold at most 8 operations and opens
// a store within that limit and 4 KiB per Txn, so batches of more than a
// few records go through the journal.
func smallTxns(t *testing.T) (*clientv3.Client, func() *Etcd) {
	srv := etcdtest.Start(t, etcdtest.Options{MaxTxnOps: 8})
	cli := srv.Client(t)
	_, term := elect(t, cli, "a:1")
	return cli, func() *Etcd {
		s, err := OpenEtcd(cli, EtcdOptions{Fence: term, MaxTxnOps: 8, MaxTxnBytes: 4096, PageSize: 7})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

// TestEtcdLargeBatch: a batch over etcd's per-Txn limit is applied whole.
func TestEtcdLargeBatch(t *testing.T) {
	cli, open := smallTxns(t)
	// The limit is real: one Txn of 9 puts is refused.
	var puts []clientv3.Op
	for i := 0; i < 9; i++ {
		puts = append(puts, clientv3.OpPut(fmt.Sprintf("/x/%d", i), "v"))
	}
	if _, err := cli.Txn(context.Background()).Then(puts...).Commit(); err == nil {
		t.Fatal("etcd took a Txn over --max-txn-ops")
	}
	s := open()
	b := &Batch{PutJobs: manyJobs(50), PutNodes: []Node{{Addr: "n:1"}, {Addr: "n:2"}}, Meta: &Meta{Seq: 51, Rev: 7}}
	if err := s.Apply(b); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(&Batch{DeleteJobs: []string{"j-0000"}, DeleteNodes: []string{"n:2"}}); err != nil {
		t.Fatal(err)
	}
	snap, err := open().Load()
	if err != nil {
		t.Fatal(err)
	}
	want := &Snapshot{Jobs: manyJobs(50)[1:], Nodes: []Node{{Addr: "n:1"}}, Meta: Meta{Seq: 51, Rev: 7}}
	if !reflect.DeepEqual(snap, want) {
		t.Fatalf("got %d jobs %d nodes meta %+v; want 49 jobs, n:1, meta 51/7", len(snap.Jobs), len(snap.Nodes), snap.Meta)
	}
	noJournalLeft(t, cli)
}

func noJournalLeft(t *testing.T, cli *clientv3.Client) {
	t.Helper()
	r, err := cli.Get(context.Background(), DefaultEtcdPrefix+etcdJournalDir, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || r.Count != 0 {
		t.Fatalf("journal keys left: %v, %v", r, err)
	}
}

// TestEtcdJournalCrash stops a large Apply at each step, as a crash would:
// before its commit nothing of it is seen; after, all of it is, and the
// next Apply finishes it before its own batch.
func TestEtcdJournalCrash(t *testing.T) {
	for _, step := range []string{"parts", "commit", "copy"} {
		t.Run(step, func(t *testing.T) {
			cli, open := smallTxns(t)
			s := open()
			if err := s.Apply(&Batch{PutJobs: []Job{testJob("j-0001", 100)}, Meta: &Meta{Seq: 1, Rev: 1}}); err != nil {
				t.Fatal(err)
			}
			crash := errors.New("crash")
			s.failAt = func(at string) error {
				if at == step {
					return crash
				}
				return nil
			}
			big := &Batch{PutJobs: manyJobs(30), Meta: &Meta{Seq: 31, Rev: 2}}
			if err := s.Apply(big); !errors.Is(err, crash) {
				t.Fatalf("Apply = %v; want the crash", err)
			}
			s2 := open()
			snap, err := s2.Load()
			if err != nil {
				t.Fatal(err)
			}
			committed := step != "parts"
			if got := len(snap.Jobs) == 30 && snap.Meta.Seq == 31 && snap.Jobs[1].Epoch == 2; got != committed {
				t.Fatalf("after a crash at %s: %d jobs, meta %+v, j-0001 epoch %d; want the batch seen: %v",
					step, len(snap.Jobs), snap.Meta, snap.Jobs[1].Epoch, committed)
			}
			if !committed && (len(snap.Jobs) != 1 || snap.Jobs[0].Epoch != 100) {
				t.Fatalf("uncommitted batch seen: %+v", snap.Jobs)
			}
			// The next (small) Apply comes after the crashed one.
			if err := s2.Apply(&Batch{PutJobs: []Job{testJob("j-0001", 200)}}); err != nil {
				t.Fatal(err)
			}
			snap, err = open().Load()
			if err != nil {
				t.Fatal(err)
			}
			if j := findJob(snap, "j-0001"); j == nil || j.Epoch != 200 {
				t.Fatalf("j-0001 after the next Apply: %+v; want epoch 200", j)
			}
			if committed {
				noJournalLeft(t, cli)
			}
		})
	}
}

func findJob(s *Snapshot, id string) *Job {
	for i := range s.Jobs {
		if s.Jobs[i].ID == id {
			return &s.Jobs[i]
		}
	}
	return nil
}

func TestEtcdRecordTooLarge(t *testing.T) {
	_, open := smallTxns(t)
	j := testJob("huge-1", 1)
	for i := 0; i < 200; i++ {
		j.Nodes = append(j.Nodes, MapWeight{Addr: fmt.Sprintf("10.0.0.%d:9000", i), Weight: 1})
	}
	if err := open().Apply(&Batch{PutJobs: []Job{j}}); err == nil || !strings.Contains(err.Error(), "huge-1") {
		t.Fatalf("Apply of a record over the request limit = %v; want an error naming it", err)
	}
}

// TestEtcdFailover kills the leading controller as kill -9 would (its
// session's client goes away, so its lease expires after the TTL) while
// its store's client still works (a process that was paused, not dead):
// another controller takes over within TTL plus slack, its Apply succeeds,
// and the old one's fails with ErrNotLeader.
func TestEtcdFailover(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	sessA, storeA, cliB := srv.Client(t), srv.Client(t), srv.Client(t)
	_, termA := elect(t, sessA, "a:1")
	a, err := OpenEtcd(storeA, EtcdOptions{Fence: termA})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(&Batch{PutJobs: []Job{testJob("a-1", 1)}, Meta: &Meta{Seq: 2, Rev: 1}}); err != nil {
		t.Fatal(err)
	}
	candB, err := leader.New(leader.Config{Client: cliB, Addr: "b:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer candB.Close()
	ctx, cancel := context.WithTimeout(context.Background(), leader.DefaultTTL+10*time.Second)
	defer cancel()
	bTerm := make(chan *leader.Term, 1)
	go func() {
		term, err := candB.Campaign(ctx)
		if err != nil {
			t.Error(err)
		}
		bTerm <- term
	}()
	time.Sleep(200 * time.Millisecond) // B is campaigning
	killed := time.Now()
	sessA.Close()
	termB := <-bTerm
	if termB == nil {
		t.FailNow()
	}
	b, err := OpenEtcd(cliB, EtcdOptions{Fence: termB})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := b.Load()
	if err != nil || len(snap.Jobs) != 1 || snap.Meta.Seq != 2 {
		t.Fatalf("new leader's Load: %+v, %v; want a-1 and seq 2", snap, err)
	}
	if err := b.Apply(&Batch{PutJobs: []Job{testJob("b-2", 1)}, Meta: &Meta{Seq: 3, Rev: 2}}); err != nil {
		t.Fatal(err)
	}
	took := time.Since(killed)
	t.Logf("failover: %v from the leader's kill to the new leader's first applied batch (TTL %v)", took, leader.DefaultTTL)
	if took > leader.DefaultTTL+8*time.Second {
		t.Errorf("failover took %v; want within the TTL %v plus slack", took, leader.DefaultTTL)
	}
	if err := a.Apply(&Batch{PutJobs: []Job{testJob("a-1", 9)}}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("the killed leader's Apply = %v; want ErrNotLeader", err)
	}
}
