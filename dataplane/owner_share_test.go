package dataplane

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/nvme"
	"github.com/pocketstore/pocket/wire"
)

// One owner's jobs together hold lanePerJob requests on the scan lane,
// as one job could: with the lane held, 16 listings of job t-1 wait, and
// those of t-2, of the same owner, are answered busy naming the owner,
// while another owner's job still gets in. On the old code (shares per
// job) t-2's listings waited too: an owner with two jobs held twice the
// room, and two turns.
func TestLaneSharePerOwner(t *testing.T) {
	n, entered, release, _ := laneNode(t)
	n.ApplyAck(syncAck(100,
		wire.JobEpoch{Job: "t-1", Gen: 90, Owner: "tenant-t"},
		wire.JobEpoch{Job: "t-2", Gen: 91, Owner: "tenant-t"},
		wire.JobEpoch{Job: "u-1", Gen: 92, Owner: "tenant-u"},
		wire.JobEpoch{Job: "slow", Gen: 93, Owner: "tenant-s"}))
	replies := make(chan error, 64)
	send := lister(t, n, replies)
	send("slow", 1)
	<-entered
	for k := 0; k < lanePerJob/lanePerConn; k++ {
		send("t-1", lanePerConn)
	}
	send("t-2", lanePerConn)
	for i := 0; i < lanePerConn; i++ {
		select {
		case err := <-replies:
			if !errors.Is(err, wire.ErrBusy) || !strings.Contains(err.Error(), "owner") {
				t.Fatalf("a listing of the owner's second job past the owner's %d waiting: %v, want busy naming the owner", lanePerJob, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of the owner's second job's %d listings answered busy while the lane was held; the rest waited", i, lanePerConn)
		}
	}
	send("u-1", 1)
	release()
	for ok := 0; ok < 1+lanePerJob+1; ok++ {
		select {
		case err := <-replies:
			if err != nil {
				t.Fatalf("listing %d after the lane moved: %v", ok, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d listings answered after the lane moved", ok, 2+lanePerJob)
		}
	}
}

// A job's requests waiting on the lane under its job key (its owner not
// known yet) move to its owner's queue when the owner becomes known
// (rekey): they count once, in the owner's bound, and every one still
// runs. Without the move the owner's jobs held 16 more.
func TestLaneRekeyMergesIntoOwner(t *testing.T) {
	l := &scanLane{owners: map[string]*laneJob{}, wake: make(chan struct{}, 1)}
	ran := 0
	work := func(bool) { ran++ }
	for i := 0; i < lanePerJob/2; i++ {
		for _, key := range []string{"j a", "o T"} {
			if err := l.submit(key, work); err != nil {
				t.Fatal(err)
			}
		}
	}
	l.rekey("j a", "o T")
	if err := l.submit("o T", work); !errors.Is(err, errLaneJob) {
		t.Fatalf("the owner's request past %d waiting, its job's moved in: %v, want %v", lanePerJob, err, errLaneJob)
	}
	if len(l.owners) != 1 || len(l.ring) != 1 || l.n != lanePerJob {
		t.Fatalf("after the move: %d queues, %d in turn, %d waiting; want 1, 1, %d", len(l.owners), len(l.ring), l.n, lanePerJob)
	}
	for ran < lanePerJob {
		f, _, ok := l.next()
		if !ok {
			t.Fatal("lane closed")
		}
		f(true)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n != 0 || len(l.ring) != 0 {
		t.Fatalf("%d waiting, %d in turn once all ran", l.n, len(l.ring))
	}
}

// unfinishedCount is how many owners' unfinished shares n keeps.
func unfinishedCount(n *Node) int {
	n.unfinished.mu.Lock()
	defer n.unfinished.mu.Unlock()
	return len(n.unfinished.m)
}

// One owner's jobs together hold the bound on unfinished puts one job
// could (a quarter of a 64 MiB DRAM tier, past half full): job t-1's two
// announced 12 MiB puts hold 24 MiB, and a 12 MiB put of t-2, of the same
// owner, is refused busy, while another owner's job puts as much. A put
// held under its job key before the table named its owner moves into the
// owner's share then, and gives its bytes back there when it ends,
// leaving no share behind. On the old code (per job) t-2's put was taken,
// its job's only unfinished one: 36 MiB held. Before the move, the early
// put stayed a share of its own, and a Python test's job held 40 MiB
// announced that way while its next puts went unrefused.
func TestUnfinishedBoundPerOwner(t *testing.T) {
	d := newDRAMTier(t, 64<<20)
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", DRAM: d, Guard: NewTokenGuard(jtSecret),
		Net: netio.Config{Loops: 1, MinSinkRate: -1}}, d)
	jobs := []wire.JobEpoch{{Job: "t-1", Gen: 90, Owner: "tenant-t"}, {Job: "t-2", Gen: 91, Owner: "tenant-t"},
		{Job: "u-1", Gen: 92, Owner: "tenant-u"}, {Job: "p-1", Gen: 93}}
	n.ApplyAck(syncAck(100, jobs...))
	late := announcePut(t, n, "p-1", "late", jobTok("p-1", 93), 4<<20) // owner not named yet
	for i := 0; i < 2; i++ {
		announcePut(t, n, "t-1", "big", jobTok("t-1", 90), 12<<20)
	}
	for deadline := time.Now().Add(5 * time.Second); d.Usage().Used < 28<<20; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the announced puts reserved %d bytes, want 28 MiB", d.Usage().Used)
		}
	}
	jobs[3].Owner = "tenant-t"
	n.ApplyAck(syncAck(101, jobs...))

	whole := make([]byte, 12<<20)
	r := roundTrip(t, dial(t, n, "t-2"), wire.OpPut, 0, &wire.Request{Job: []byte("t-2"), Key: []byte("k"), Token: jobTok("t-2", 91)}, whole)
	if !errors.Is(r.Err(), wire.ErrBusy) || !strings.Contains(r.Err().Error(), "still arriving") {
		t.Fatalf("a 12 MiB put of the owner's second job beside its first job's 24 MiB unfinished: %v, want busy", r.Err())
	}
	r = roundTrip(t, dial(t, n, "u-1"), wire.OpPut, 0, &wire.Request{Job: []byte("u-1"), Key: []byte("k"), Token: jobTok("u-1", 92)}, whole)
	if r.Err() != nil {
		t.Fatalf("another owner's 12 MiB put: %v", r.Err())
	}
	if got, early := n.unfinished.held("o tenant-t", 0), n.unfinished.held("j p-1", 0); got != 28<<20 || early != 0 {
		t.Fatalf("the owner holds %d unfinished bytes and p-1's job key %d; want 28 MiB (its first job's 24 and p-1's early 4) and 0", got, early)
	}
	late.Close()
	for deadline := time.Now().Add(5 * time.Second); n.unfinished.held("o tenant-t", 0) != 24<<20; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the owner holds %d bytes once p-1's early put was dropped, want 24 MiB", n.unfinished.held("o tenant-t", 0))
		}
	}
	if got, shares := n.unfinished.held("o tenant-t", 0), unfinishedCount(n); got != 24<<20 || shares != 1 {
		t.Fatalf("after the early put ended: the owner holds %d unfinished bytes in %d shares, want 24 MiB in 1", got, shares)
	}
}

// putTo stores size bytes under job/key in tier.
func putTo(tier Tier, job, key string, size int) error {
	p, err := tier.Create([]byte(job), []byte(key), int64(size), Meta{})
	if err != nil {
		return err
	}
	_, err = p.Commit()
	return err
}

// ownedNVMe is an NVMe tier of 64 MiB with a 64 KiB key index whose
// jobs' owners are owners' (job -> owner; a job not there is its own).
func ownedNVMe(t *testing.T, owners map[string]string, topts NVMeOptions) *NVMe {
	topts.MaxIndexBytes = 64 << 10
	tier := fileNVMe(t, nvme.Options{Size: 64 << 20, BufferPool: 16 << 20, Engine: nvme.EngineSync}, topts)
	tier.setOwners(func(job []byte) []byte {
		if o, ok := owners[string(job)]; ok {
			return []byte("o " + o)
		}
		return nil
	})
	return tier
}

// fillKeys puts one-byte values of job until one is refused, and returns
// how many were stored and the refusal.
func fillKeys(tier Tier, job string) (int, error) {
	for n := 0; ; n++ {
		if err := putTo(tier, job, fmt.Sprintf("k%04d", n), 1); err != nil {
			return n, err
		}
	}
}

// One owner's jobs together get one share of the NVMe key index, and one
// slack: job t-1's one-byte keys fill the owner's (20 of them in a 64 KiB
// index, TestNVMeIndexShares), and t-2's first key is refused as at its
// share, while another owner's job still gets its own 20. On the old
// code (shares per job) t-2 took another 20: a re-check filled a 1 MiB
// index with two jobs of one client.
func TestNVMeIndexSharePerOwner(t *testing.T) {
	tier := ownedNVMe(t, map[string]string{"t-1": "tenant-t", "t-2": "tenant-t"}, NVMeOptions{})
	n, err := fillKeys(tier, "t-1")
	if !errors.Is(err, ErrJobIndexFull) || n != 20 {
		t.Fatalf("the owner's first job: %d keys, then %v; want 20, then its share full", n, err)
	}
	if n, err := fillKeys(tier, "t-2"); n != 0 || !errors.Is(err, ErrJobIndexFull) {
		t.Fatalf("the owner's second job: %d keys, then %v; want 0, its owner's share full", n, err)
	}
	if n, err := fillKeys(tier, "u-1"); n != 20 || !errors.Is(err, ErrJobIndexFull) {
		t.Fatalf("another owner's job: %d keys, then %v; want 20", n, err)
	}
}

// A job's keys counted against its job key before its owner is known
// move, exactly, into its owner's share when the node says so (rebind):
// p-1's 8 keys leave the owner's first job 12 of the 20, and dropping p-1
// gives back its 8. With every job dropped nothing stays counted. On the
// old code t-1 got 20 beside p-1's 8.
func TestNVMeIndexShareMovesToOwner(t *testing.T) {
	owners := map[string]string{"t-1": "tenant-t"}
	tier := ownedNVMe(t, owners, NVMeOptions{})
	for i := 0; i < 8; i++ {
		if err := putTo(tier, "p-1", fmt.Sprintf("p%d", i), 1); err != nil {
			t.Fatal(err)
		}
	}
	owners["p-1"] = "tenant-t"
	tier.rebind("p-1")
	if n, err := fillKeys(tier, "t-1"); n != 12 || !errors.Is(err, ErrJobIndexFull) {
		t.Fatalf("the owner's job beside its other job's 8 keys: %d keys, then %v; want 12", n, err)
	}
	tier.DropJob([]byte("p-1"), false)
	if err := putTo(tier, "t-1", "after", 1); err != nil {
		t.Fatalf("a key once the owner's other job was dropped: %v", err)
	}
	tier.DropJob([]byte("t-1"), false)
	tier.mu.RLock()
	defer tier.mu.RUnlock()
	if len(tier.shares) != 0 || tier.index != 0 || tier.over != 0 {
		t.Fatalf("every job dropped: %d shares, index %d, %d beyond shares; want none", len(tier.shares), tier.index, tier.over)
	}
}

// One owner's jobs' gets together hold the read staging share one job's
// could (MaxReadStagingPerJob, 2 MiB here): with t-1's two open 1 MiB
// values, a get of t-2, of the same owner, is refused busy, and another
// owner's is served. On the old code (per job) t-2's get was served.
func TestNVMeReadSharePerOwner(t *testing.T) {
	tier := ownedNVMe(t, map[string]string{"t-1": "tenant-t", "t-2": "tenant-t"}, NVMeOptions{MaxReadStagingPerJob: 2 << 20})
	for _, job := range []string{"t-1", "t-2", "u-1"} {
		if err := putTo(tier, job, "v", 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 2; i++ {
		v, err := tier.Open([]byte("t-1"), []byte("v"))
		if err != nil {
			t.Fatalf("the owner's open %d: %v", i, err)
		}
		defer v.Release()
	}
	if v, err := tier.Open([]byte("t-2"), []byte("v")); !errors.Is(err, errReadShare) {
		if err == nil {
			v.Release()
		}
		t.Fatalf("a get of the owner's second job beside 2 MiB of its first's: %v, want %v", err, errReadShare)
	}
	v, err := tier.Open([]byte("u-1"), []byte("v"))
	if err != nil {
		t.Fatalf("another owner's get: %v", err)
	}
	v.Release()
}

// shareKeys lists the owner keys of tier's shares.
func shareKeys(tier *NVMe) []string {
	tier.mu.RLock()
	defer tier.mu.RUnlock()
	var keys []string
	for k := range tier.shares {
		keys = append(keys, k)
	}
	return keys
}

// A node tells its NVMe tier whose each job is (setOwners), and moves a
// job's keys to its owner's share when a heartbeat's table names the
// owner (ApplyAck, ownerLearned): the key p-1 put under its job key is
// then counted in the owner's share alone.
func TestNodeMovesNVMeKeysToTheOwner(t *testing.T) {
	nv := fileNVMe(t, nvme.Options{Size: 64 << 20, BufferPool: 16 << 20, Engine: nvme.EngineSync}, NVMeOptions{})
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", NVMe: nv, Guard: NewTokenGuard(jtSecret),
		Net: netio.Config{Loops: 1}}, nv)
	n.ApplyAck(syncAck(100, wire.JobEpoch{Job: "p-1", Gen: 90}))
	if err := putTo(nv, "p-1", "k", 1); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(shareKeys(nv)); got != "[j p-1]" {
		t.Fatalf("shares %s before the owner is known, want [j p-1]", got)
	}
	n.ApplyAck(syncAck(101, wire.JobEpoch{Job: "p-1", Gen: 90, Owner: "tenant-t"}))
	if got := fmt.Sprint(shareKeys(nv)); got != "[o tenant-t]" {
		t.Fatalf("shares %s once the table names the owner, want [o tenant-t]", got)
	}
}

// fillVersions puts one-byte chunks of job, each of its own version, on
// c until one is refused, and returns how many were stored and the
// refusal.
func fillVersions(t *testing.T, n *Node, job string) (int, error) {
	c := dial(t, n, job)
	for ver := uint64(1); ; ver++ {
		r := roundTrip(t, c, wire.OpPut, wire.FlagChunk|wire.FlagLease, jobChunkReq(job, "o", ver, 1), []byte("x"))
		if r.Err() != nil {
			return int(ver - 1), r.Err()
		}
	}
}

// One owner's jobs together get one share of the node's table of object
// versions (jobVersionSlack beyond a quarter of their chunks' bytes): job
// t-1's one-byte chunks, each of its own version, fill the owner's, and
// t-2's first chunk is refused as at its share, while another owner's
// job still gets its own. On the old code (per job) t-2 took as many as
// t-1: a re-check filled the shared quarter with 225 jobs of one client.
func TestVersionSharePerOwner(t *testing.T) {
	d := newDRAMTier(t, 64<<20)
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", DRAM: d, Net: netio.Config{Loops: 1}, MaxVersionBytes: 64 << 20}, d)
	n.ApplyAck(syncAck(100,
		wire.JobEpoch{Job: "t-1", Gen: 90, Owner: "tenant-t"},
		wire.JobEpoch{Job: "t-2", Gen: 91, Owner: "tenant-t"},
		wire.JobEpoch{Job: "u-1", Gen: 92, Owner: "tenant-u"}))
	first, err := fillVersions(t, n, "t-1")
	if !errors.Is(err, ErrJobVersionsFull) || first == 0 {
		t.Fatalf("the owner's first job: %d versions, then %v; want its share full", first, err)
	}
	if k, err := fillVersions(t, n, "t-2"); k != 0 || !errors.Is(err, ErrJobVersionsFull) {
		t.Fatalf("the owner's second job beside its first's %d versions: %d, then %v; want 0, the owner's share full", first, k, err)
	}
	if k, err := fillVersions(t, n, "u-1"); k != first || !errors.Is(err, ErrJobVersionsFull) {
		t.Fatalf("another owner's job: %d versions, then %v; want %d", k, err, first)
	}
}

// A job's versions counted against its job key before its owner is known
// move, exactly, into its owner's count when the node learns the owner
// (rebind), and are taken back from there when they go: the owner's
// other job then gets what is left of one share, and with every version
// dropped no count stays.
func TestVersionShareMovesToOwner(t *testing.T) {
	d := newDRAMTier(t, 64<<20)
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", DRAM: d, Net: netio.Config{Loops: 1}, MaxVersionBytes: 64 << 20}, d)
	k := verKey{KindDRAM, "p-1", 1}
	n.vers.mu.Lock()
	n.vers.chargeLocked(k, jobVersionSlack/2, 0)
	n.vers.mu.Unlock()
	n.ApplyAck(syncAck(100, wire.JobEpoch{Job: "p-1", Gen: 90, Owner: "tenant-t"}, wire.JobEpoch{Job: "t-1", Gen: 91, Owner: "tenant-t"}))
	if err := n.vers.admit(verKey{KindDRAM, "t-1", 1}, "x", 0); err != nil {
		t.Fatalf("a chunk of the owner's other job within what is left: %v", err)
	}
	n.vers.mu.Lock()
	n.vers.chargeLocked(verKey{KindDRAM, "t-1", 1}, jobVersionSlack/2, 0)
	n.vers.mu.Unlock()
	if err := n.vers.admit(verKey{KindDRAM, "t-1", 2}, "x", 0); !errors.Is(err, ErrJobVersionsFull) {
		t.Fatalf("a chunk of the owner's job past one share over its two jobs: %v, want %v", err, ErrJobVersionsFull)
	}
	n.vers.mu.Lock()
	defer n.vers.mu.Unlock()
	n.vers.chargeLocked(k, -jobVersionSlack/2, 0)
	n.vers.chargeLocked(verKey{KindDRAM, "t-1", 1}, -jobVersionSlack/2, 0)
	if len(n.vers.owners) != 0 || len(n.vers.jobs) != 0 || n.vers.over != 0 {
		t.Fatalf("every count taken back: %d owners, %d jobs, %d beyond shares; want none", len(n.vers.owners), len(n.vers.jobs), n.vers.over)
	}
}
