package dataplane

import (
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/wire"
)

var jtSecret = []byte("jobtable-test-secret-0123456789")

// tokenNode is a node guarded by tokens of jtSecret, as `pocket node` runs
// with a controller.
func tokenNode(t testing.TB) *Node {
	t.Helper()
	return startNode(t, 64<<20, NewTokenGuard(jtSecret))
}

// put, get and list with a token and an epoch, returning the node's error.
func jobOp(t testing.TB, n *Node, op wire.Op, job, key string, tok []byte, epoch uint64, flags uint16) error {
	t.Helper()
	c := dial(t, n, job)
	var payload []byte
	if op == wire.OpPut {
		payload = []byte("value of " + key)
	}
	r := roundTrip(t, c, op, flags, &wire.Request{Job: []byte(job), Key: []byte(key), Token: tok, Epoch: epoch}, payload)
	return r.Err()
}

// TestClientEpochsAreNotLearned (issue 11, B): a client's epoch can only be
// refused as stale or accepted; the node's epoch moves only when the
// controller moves it. The old node learned any higher epoch a client
// sent, so one request with 2^64-1 locked the job out, and epoch 0 skipped
// the check. A newer epoch than the node's is refused naming the node's
// (it is behind; a client takes that as such and sends again).
func TestClientEpochsAreNotLearned(t *testing.T) {
	n := startNode(t, 64<<20, fakeGuard{})
	put := func(epoch uint64) error {
		return jobOp(t, n, wire.OpPut, "j", "k", []byte("ok-j"), epoch, 0)
	}
	n.SetEpoch("j", 5) // the controller's word
	var we *wire.Error
	if err := put(math.MaxUint64); !errors.As(err, &we) || we.Code != wire.CodeStaleEpoch || we.Epoch != 5 {
		t.Fatalf("an epoch newer than the node's: %v, want stale naming the node's epoch 5", err)
	}
	if err := put(5); err != nil {
		t.Fatalf("after a client sent 2^64-1, the current epoch is refused: %v (the client moved the node's epoch)", err)
	}
	if err := put(0); !errors.As(err, &we) || we.Code != wire.CodeStaleEpoch || we.Epoch != 5 {
		t.Fatalf("epoch 0 on a node that knows the job's epoch: %v, want stale (current 5)", err)
	}
	if err := put(4); !errors.As(err, &we) || we.Code != wire.CodeStaleEpoch || we.Epoch != 5 {
		t.Fatalf("older epoch: %v", err)
	}
	n.SetEpoch("j", 6)
	if err := put(5); !errors.Is(err, wire.ErrStaleEpoch) {
		t.Fatalf("the controller's newer epoch did not take: %v", err)
	}
}

// syncAck is a snapshot of live jobs, complete, at revision rev.
func syncAck(rev uint64, jobs ...wire.JobEpoch) *wire.NodeAck {
	return &wire.NodeAck{Known: true, State: wire.NodeActive, Rev: rev, Full: true, Jobs: jobs}
}

func jobTok(job string, gen uint64) []byte {
	return token.SignJob(jtSecret, []byte(job), token.Claims{Gen: gen})
}

// TestRevocationRefusesAndDrops: once the controller says a job is
// revoked, its token is refused on every op (a connection that already
// used it included) and what it stored is dropped.
func TestRevocationRefusesAndDrops(t *testing.T) {
	n := tokenNode(t)
	n.ApplyAck(syncAck(100, wire.JobEpoch{Job: "a-1", Gen: 90, Epoch: 1}, wire.JobEpoch{Job: "b-2", Gen: 95}))
	tok := jobTok("a-1", 90)
	c := dial(t, n, "a-1")
	for i := 0; i < 10; i++ {
		r := roundTrip(t, c, wire.OpPut, 0, &wire.Request{Job: []byte("a-1"), Key: []byte(fmt.Sprint("k", i)), Token: tok, Epoch: 1}, []byte("v"))
		if r.Err() != nil {
			t.Fatal(r.Err())
		}
	}
	if u := n.jobUsage([]byte("a-1")); u == 0 {
		t.Fatal("nothing stored")
	}
	n.ApplyAck(&wire.NodeAck{Known: true, Rev: 101, Jobs: []wire.JobEpoch{{Job: "a-1", Gen: 90, Revoked: true}}})
	n.bg.wait() // drops run off the heartbeat's goroutine (bgdrop.go)
	for _, op := range []wire.Op{wire.OpPut, wire.OpGet, wire.OpList, wire.OpDelete, wire.OpStat} {
		req := &wire.Request{Job: []byte("a-1"), Key: []byte("k1"), Token: tok, Epoch: 1}
		var payload []byte
		if op == wire.OpPut {
			payload = []byte("x")
		}
		if r := roundTrip(t, c, op, 0, req, payload); !errors.Is(r.Err(), wire.ErrRevoked) {
			t.Errorf("%s on the cached connection after revocation: %v", op, r.Err())
		}
		if err := jobOp(t, n, op, "a-1", "k1", tok, 1, 0); !errors.Is(err, wire.ErrRevoked) {
			t.Errorf("%s on a new connection after revocation: %v", op, err)
		}
	}
	if u := n.jobUsage([]byte("a-1")); u != 0 {
		t.Fatalf("revoked job still holds %d bytes", u)
	}
	// Another job is untouched.
	if err := jobOp(t, n, wire.OpPut, "b-2", "k", jobTok("b-2", 95), 0, 0); err != nil {
		t.Fatalf("another job: %v", err)
	}
	// Once the entry lingered out, the token is still refused (its gen
	// is at or before the table's revision and the job is not live).
	n.sweepRevoked(time.Now().Add(2 * wire.RevokeLinger))
	if e := n.jobs.lookup([]byte("a-1")); e != nil {
		t.Fatal("revoked entry not removed after the linger")
	}
	if err := jobOp(t, n, wire.OpGet, "a-1", "k1", tok, 1, 0); !errors.Is(err, wire.ErrRevoked) {
		t.Fatalf("after the linger: %v", err)
	}
}

// TestUnknownJobs: a synced node refuses a valid token of a job it does not
// know unless the job is newer than its revision (then it is pending, and
// revoked with its data if the next acks do not list it).
func TestUnknownJobs(t *testing.T) {
	n := tokenNode(t)
	n.ApplyAck(syncAck(100, wire.JobEpoch{Job: "live-1", Gen: 50}))
	if err := jobOp(t, n, wire.OpPut, "gone-1", "k", jobTok("gone-1", 60), 0, 0); !errors.Is(err, wire.ErrRevoked) {
		t.Fatalf("a job older than the table's revision that it does not hold: %v", err)
	}
	// A job newer than the table (the node is behind) is pending: it
	// takes reads; its puts wait until the controller lists it
	// (TestPendingJobRefusesPuts).
	if err := jobOp(t, n, wire.OpGet, "new-1", "k", jobTok("new-1", 120), 0, 0); !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("a job newer than the table (the node is behind): %v", err)
	}
	if err := jobOp(t, n, wire.OpGet, "new-2", "k", jobTok("new-2", 130), 0, 0); !errors.Is(err, wire.ErrNotFound) {
		t.Fatal(err)
	}
	// The next ack reaches revision 125 and lists new-1 only: new-2 (gen
	// 130) stays pending, new-1 is live.
	n.ApplyAck(&wire.NodeAck{Known: true, Rev: 125, Jobs: []wire.JobEpoch{{Job: "new-1", Gen: 120, Epoch: 1}}})
	if err := jobOp(t, n, wire.OpPut, "new-1", "k", jobTok("new-1", 120), 1, 0); err != nil {
		t.Fatalf("listed job's put: %v", err)
	}
	if err := jobOp(t, n, wire.OpGet, "new-2", "k", jobTok("new-2", 130), 0, 0); !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("pending job refused early: %v", err)
	}
	// Revision 140 without new-2: it was never live (or is gone) and its
	// data is dropped.
	n.ApplyAck(&wire.NodeAck{Known: true, Rev: 140})
	n.bg.wait() // drops run off the heartbeat's goroutine (bgdrop.go)
	if err := jobOp(t, n, wire.OpGet, "new-2", "k", jobTok("new-2", 130), 0, 0); !errors.Is(err, wire.ErrRevoked) {
		t.Fatalf("pending job not listed by its revision: %v", err)
	}
	if u := n.jobUsage([]byte("new-2")); u != 0 {
		t.Fatalf("unlisted job still holds %d bytes", u)
	}
	if err := jobOp(t, n, wire.OpGet, "new-1", "k", jobTok("new-1", 120), 1, 0); err != nil {
		t.Fatalf("listed job: %v", err)
	}
	// A token of the same id but another generation (an earlier
	// controller run's job) does not pass for the live job.
	if err := jobOp(t, n, wire.OpGet, "new-1", "k", jobTok("new-1", 7), 1, 0); !errors.Is(err, wire.ErrRevoked) {
		t.Fatalf("another generation's token: %v", err)
	}
}

// TestSnapshotRevokesWhatItDoesNotList: a snapshot (after a controller
// restart, or a node too far behind) refuses the jobs it does not list;
// their data stays until the controller orders it dropped (held.go).
func TestSnapshotRevokesWhatItDoesNotList(t *testing.T) {
	n := tokenNode(t)
	n.ApplyAck(syncAck(100, wire.JobEpoch{Job: "old-1", Gen: 90}, wire.JobEpoch{Job: "keep-1", Gen: 91}))
	if err := jobOp(t, n, wire.OpPut, "old-1", "k", jobTok("old-1", 90), 0, 0); err != nil {
		t.Fatal(err)
	}
	// A two-page snapshot from a new controller run at revision 500.
	n.ApplyAck(&wire.NodeAck{Known: true, Rev: 500, Full: true, More: true, After: 91, Jobs: []wire.JobEpoch{{Job: "keep-1", Gen: 91}}})
	if since, snap, after := n.JobSync(); since != 100 || snap != 500 || after != 91 {
		t.Fatalf("sync point mid-snapshot: %d %d %d", since, snap, after)
	}
	n.ApplyAck(&wire.NodeAck{Known: true, Rev: 500, Full: true, After: 450, Jobs: []wire.JobEpoch{{Job: "n-1", Gen: 450}}})
	if since, snap, _ := n.JobSync(); since != 500 || snap != 0 {
		t.Fatalf("sync point after the snapshot: %d %d", since, snap)
	}
	if err := jobOp(t, n, wire.OpGet, "old-1", "k", jobTok("old-1", 90), 0, 0); !errors.Is(err, wire.ErrRevoked) {
		t.Fatalf("job the snapshot did not list: %v", err)
	}
	if u := n.jobUsage([]byte("old-1")); u == 0 {
		t.Fatal("the unlisted job's data was dropped before the controller ordered it")
	}
	if h := n.HeldJobs(wire.MaxHeldJobs); len(h) != 1 || h[0].Job != "old-1" || h[0].Bytes == 0 {
		t.Fatalf("held jobs %v; want old-1 with its bytes", h)
	}
	for job, gen := range map[string]uint64{"keep-1": 91, "n-1": 450} {
		if err := jobOp(t, n, wire.OpPut, job, "k", jobTok(job, gen), 0, 0); err != nil {
			t.Fatalf("%s: %v", job, err)
		}
	}
}

// TestExpiredTokens: an expired token is refused with CodeRevoked saying
// so, by the guard and on a connection that used it before.
func TestExpiredTokens(t *testing.T) {
	n := tokenNode(t)
	exp := time.Now().Add(300 * time.Millisecond).Truncate(time.Millisecond)
	n.ApplyAck(syncAck(100, wire.JobEpoch{Job: "t-1", Gen: 99, Expires: exp}))
	tok := token.SignJob(jtSecret, []byte("t-1"), token.Claims{Gen: 99, Expires: exp})
	c := dial(t, n, "t-1")
	req := &wire.Request{Job: []byte("t-1"), Key: []byte("k"), Token: tok}
	if r := roundTrip(t, c, wire.OpPut, 0, req, []byte("v")); r.Err() != nil {
		t.Fatal(r.Err())
	}
	time.Sleep(time.Until(exp) + 10*time.Millisecond)
	r := roundTrip(t, c, wire.OpGet, 0, req, nil)
	err := r.Err()
	if !errors.Is(err, wire.ErrRevoked) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired token on a connection that used it: %v", err)
	}
	if err := jobOp(t, n, wire.OpGet, "t-1", "k", tok, 0, 0); !errors.Is(err, wire.ErrRevoked) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired token on a new connection: %v", err)
	}
	// An unbound guard refuses it too.
	if err := NewTokenGuard(jtSecret).CheckJob([]byte("t-1"), tok); !errors.Is(err, wire.ErrRevoked) {
		t.Fatalf("unbound guard: %v", err)
	}
}

// TestRevokedJobKeepsPersistentValues: values put with persist-after-job
// outlive the job and stay readable and deletable (the job is retired on
// that node), and nothing more can be stored.
func TestRevokedJobKeepsPersistentValues(t *testing.T) {
	n := tokenNode(t)
	n.ApplyAck(syncAck(100, wire.JobEpoch{Job: "p-1", Gen: 99}))
	tok := jobTok("p-1", 99)
	if err := jobOp(t, n, wire.OpPut, "p-1", "kept", tok, 0, wire.FlagPersist); err != nil {
		t.Fatal(err)
	}
	if err := jobOp(t, n, wire.OpPut, "p-1", "gone", tok, 0, 0); err != nil {
		t.Fatal(err)
	}
	n.ApplyAck(&wire.NodeAck{Known: true, Rev: 101, Jobs: []wire.JobEpoch{{Job: "p-1", Gen: 99, Revoked: true}}})
	n.bg.wait() // drops run off the heartbeat's goroutine (bgdrop.go)
	if err := jobOp(t, n, wire.OpGet, "p-1", "kept", tok, 0, 0); err != nil {
		t.Fatalf("persistent value: %v", err)
	}
	if err := jobOp(t, n, wire.OpGet, "p-1", "gone", tok, 0, 0); !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("dropped value: %v", err)
	}
	// A retired job's values are read-only: a put is refused, even one
	// asking to persist; a delete works.
	for _, flags := range []uint16{0, wire.FlagPersist} {
		if err := jobOp(t, n, wire.OpPut, "p-1", "more", tok, 0, flags); !errors.Is(err, wire.ErrRevoked) {
			t.Fatalf("put (flags %#x) to a retired job: %v", flags, err)
		}
	}
	n.sweepRevoked(time.Now())
	if err := jobOp(t, n, wire.OpGet, "p-1", "kept", tok, 0, 0); err != nil {
		t.Fatalf("persistent value after the sweep: %v", err)
	}
	if err := jobOp(t, n, wire.OpDelete, "p-1", "kept", tok, 0, 0); err != nil {
		t.Fatalf("delete of a persistent value: %v", err)
	}
	if err := jobOp(t, n, wire.OpGet, "p-1", "kept", tok, 0, 0); !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("after its delete: %v", err)
	}
}

// TestDropOrderRevokes: the controller's drop order revokes the job on a
// guarded node at once, before the heartbeat brings the revocation.
func TestDropOrderRevokes(t *testing.T) {
	n := tokenNode(t)
	n.ApplyAck(syncAck(100, wire.JobEpoch{Job: "d-1", Gen: 99}))
	tok := jobTok("d-1", 99)
	if err := jobOp(t, n, wire.OpPut, "d-1", "k", tok, 0, 0); err != nil {
		t.Fatal(err)
	}
	c := dial(t, n, "d-1")
	r := roundTrip(t, c, wire.OpDropJob, 0, dropOrder(n, n.Addr().String(), "d-1", 0, "nonce-d-1-00001"), nil)
	if r.Err() != nil {
		t.Fatal(r.Err())
	}
	if err := jobOp(t, n, wire.OpPut, "d-1", "k2", tok, 0, 0); !errors.Is(err, wire.ErrRevoked) {
		t.Fatalf("put after the drop order: %v", err)
	}
}

// BenchmarkApplyAck measures what a heartbeat costs a node whose table
// holds 10,000 jobs: an ack with no change, one epoch change, one new job,
// one revocation.
func BenchmarkApplyAck(b *testing.B) {
	const jobs = 10_000
	setup := func(b *testing.B) *Node {
		n := startNode(b, 1<<20, NewTokenGuard(jtSecret))
		snap := &wire.NodeAck{Known: true, Rev: 1_000_000, Full: true}
		for i := 0; i < jobs; i++ {
			snap.Jobs = append(snap.Jobs, wire.JobEpoch{Job: fmt.Sprintf("job-%d", i), Gen: uint64(i + 1), Epoch: uint64(i%2 + 1)})
		}
		n.ApplyAck(snap)
		return n
	}
	b.Run("unchanged", func(b *testing.B) {
		n := setup(b)
		rev := uint64(1_000_000)
		b.ReportAllocs()
		for b.Loop() {
			n.ApplyAck(&wire.NodeAck{Known: true, Rev: rev})
		}
	})
	b.Run("one-epoch", func(b *testing.B) {
		n := setup(b)
		rev := uint64(1_000_000)
		b.ReportAllocs()
		for b.Loop() {
			rev++
			n.ApplyAck(&wire.NodeAck{Known: true, Rev: rev, Jobs: []wire.JobEpoch{{Job: "job-7", Gen: 8, Epoch: rev}}})
		}
	})
	b.Run("one-new-job", func(b *testing.B) {
		n := setup(b)
		rev := uint64(2_000_000)
		b.ReportAllocs()
		for b.Loop() {
			rev++
			n.ApplyAck(&wire.NodeAck{Known: true, Rev: rev, Jobs: []wire.JobEpoch{{Job: fmt.Sprintf("new-%d", rev), Gen: rev}}})
		}
	})
}

// BenchmarkJobCheck is the per-request check with 10,000 jobs.
func BenchmarkJobCheck(b *testing.B) {
	var j jobTable
	j.init()
	ack := &wire.NodeAck{Rev: 20_000, Full: true}
	for i := 0; i < 10_000; i++ {
		ack.Jobs = append(ack.Jobs, wire.JobEpoch{Job: fmt.Sprintf("job-%d", i), Gen: uint64(i + 1), Epoch: 3})
	}
	j.apply(ack, time.Now())
	job := []byte("job-4242")
	b.ReportAllocs()
	for b.Loop() {
		if err := j.check(job, 3); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPutAcrossRevocationStoresNothing: a put admitted before its job was
// revoked, whose payload ends after, stores nothing (CodeRevoked), and the
// job's persisted values stay. Before, the put was acknowledged and the
// node then dropped everything the job held, persisted values included.
func TestPutAcrossRevocationStoresNothing(t *testing.T) {
	n := tokenNode(t)
	n.ApplyAck(syncAck(100, wire.JobEpoch{Job: "s-1", Gen: 99}))
	tok := jobTok("s-1", 99)
	if err := jobOp(t, n, wire.OpPut, "s-1", "p", tok, 0, wire.FlagPersist); err != nil {
		t.Fatal(err)
	}
	nc, err := net.Dial("tcp", n.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	meta := wire.NewEncoder().Request(&wire.Request{Job: []byte("s-1"), Key: []byte("sneaky"), Token: tok})
	const size = 4 << 20
	frame := wire.AppendHeader(nil, &wire.Header{Op: wire.OpPut, Flags: wire.FlagPersist, ID: 7, MetaLen: uint32(len(meta)), PayloadLen: size})
	frame = append(append(frame, meta...), make([]byte, 1<<20)...)
	if _, err := nc.Write(frame); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return n.Stats().BytesIn >= size }) // the put is admitted and under way
	n.ApplyAck(&wire.NodeAck{Known: true, Rev: 101, Jobs: []wire.JobEpoch{{Job: "s-1", Gen: 99, Revoked: true}}})
	if _, err := nc.Write(make([]byte, size-1<<20)); err != nil {
		t.Fatal(err)
	}
	h, err := readHeader(nc)
	if err != nil || h.Code != wire.CodeRevoked {
		t.Fatalf("put across the revocation: code %v, %v", h.Code, err)
	}
	n.bg.wait() // drops run off the heartbeat's goroutine (bgdrop.go)
	n.sweepRevoked(time.Now())
	if err := jobOp(t, n, wire.OpGet, "s-1", "sneaky", tok, 0, 0); !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("the put across the revocation: %v", err)
	}
	if err := jobOp(t, n, wire.OpGet, "s-1", "p", tok, 0, 0); err != nil {
		t.Fatalf("persisted value after a put across the revocation: %v", err)
	}
}

// TestRetiredPrefixDeleteTakesChunks: a retired job's persisted chunk that
// no manifest names (its writer died before publishing) is invisible to
// listings, so a recursive delete of a retired job takes chunk keys too,
// and its reply says their bytes (Size) beside no name (Count): before,
// rm --all freed 182 MiB of such chunks and said "deleted 0 keys". A live
// job's recursive delete leaves them to their versions.
func TestRetiredPrefixDeleteTakesChunks(t *testing.T) {
	n := tokenNode(t)
	n.ApplyAck(syncAck(100, wire.JobEpoch{Job: "c-1", Gen: 99}))
	tok := jobTok("c-1", 99)
	c := dial(t, n, "c-1")
	chunk := &wire.Request{Job: []byte("c-1"), Key: wire.AppendChunkKey(nil, []byte("o"), 7, 1), Token: tok, Version: 7}
	if r := roundTrip(t, c, wire.OpPut, wire.FlagChunk|wire.FlagPersist, chunk, []byte("orphan")); r.Err() != nil {
		t.Fatal(r.Err())
	}
	all := &wire.Request{Job: []byte("c-1"), Token: tok}
	if r := roundTrip(t, c, wire.OpDelete, wire.FlagPrefix, all, nil); r.Err() != nil || n.JobValues("c-1") != 1 {
		t.Fatalf("live job's recursive delete: %v, %d values left, want the chunk", r.Err(), n.JobValues("c-1"))
	}
	n.ApplyAck(&wire.NodeAck{Known: true, Rev: 101, Jobs: []wire.JobEpoch{{Job: "c-1", Gen: 99, Revoked: true}}})
	n.bg.wait() // drops run off the heartbeat's goroutine (bgdrop.go)
	c2 := dial(t, n, "c-1")
	r := roundTrip(t, c2, wire.OpDelete, wire.FlagPrefix, all, nil)
	if r.Err() != nil || n.JobValues("c-1") != 0 {
		t.Fatalf("retired job's recursive delete: %v, %d values left", r.Err(), n.JobValues("c-1"))
	}
	var resp wire.Response
	if err := wire.DecodeResponse(r.Meta, &resp); err != nil || resp.Count != 0 || resp.Size != int64(len("orphan")) {
		t.Fatalf("retired job's recursive delete answered %d names, %d chunk bytes (%v); want 0 and %d", resp.Count, resp.Size, err, len("orphan"))
	}
}

// TestOutOfMapRefusesItsEpoch: a node the controller marks out of a job's
// map refuses the job's requests at or below the map's epoch (a client
// holding a map from before the node left, whose puts would land where no
// reader looks), and newer ones naming its own (the node is behind), lists
// the job as not placed here, and takes the job's requests again once a
// later epoch puts it back in the map; a chunked put's confirm and drop
// of a version are taken at the map's epoch (the writer's chunks may be
// there). The old table kept epoch 0 for such a node and so took every
// epoch.
func TestOutOfMapRefusesItsEpoch(t *testing.T) {
	n := tokenNode(t)
	tok := jobTok("j-1", 90)
	n.ApplyAck(syncAck(100, wire.JobEpoch{Job: "j-1", Gen: 90, Epoch: 7, Out: true}))
	var we *wire.Error
	for _, epoch := range []uint64{0, 3, 7} {
		err := jobOp(t, n, wire.OpPut, "j-1", "k", tok, epoch, 0)
		if !errors.As(err, &we) || we.Code != wire.CodeStaleEpoch || we.Epoch != 7 || !strings.Contains(we.Msg, "not in the job's placement map") {
			t.Fatalf("put at epoch %d on a node out of the map at 7: %v, want stale (7, not in the map)", epoch, err)
		}
		if err := jobOp(t, n, wire.OpGet, "j-1", "k", tok, epoch, 0); !errors.Is(err, wire.ErrStaleEpoch) {
			t.Fatalf("get at epoch %d on a node out of the map: %v, want stale", epoch, err)
		}
	}
	// A writer confirms (or drops) a chunked put's version where it put the
	// chunks, a node that may have left the map since.
	for _, op := range []wire.Op{wire.OpConfirm, wire.OpDropVersion} {
		if err := jobOp(t, n, op, "j-1", "k", tok, 7, 0); errors.Is(err, wire.ErrStaleEpoch) {
			t.Fatalf("%v at the map's epoch on a node out of it: %v, want it taken", op, err)
		}
	}
	if got := n.PlacedJobs(); len(got) != 0 {
		t.Fatalf("placed jobs %v on a node out of their maps", got)
	}
	if err := jobOp(t, n, wire.OpPut, "j-1", "k", tok, 8, 0); !errors.As(err, &we) || we.Code != wire.CodeStaleEpoch || we.Epoch != 7 {
		t.Fatalf("a newer epoch than the node's: %v, want stale naming 7 (the node is behind)", err)
	}
	// The job's map takes the node in at epoch 9.
	n.ApplyAck(&wire.NodeAck{Known: true, Rev: 101, Jobs: []wire.JobEpoch{{Job: "j-1", Gen: 90, Epoch: 9}}})
	if err := jobOp(t, n, wire.OpPut, "j-1", "k", tok, 9, 0); err != nil {
		t.Fatalf("put at the epoch whose map holds the node: %v", err)
	}
	if err := jobOp(t, n, wire.OpPut, "j-1", "k", tok, 8, 0); !errors.As(err, &we) || we.Code != wire.CodeStaleEpoch || strings.Contains(we.Msg, "not in the job's placement map") {
		t.Fatalf("put at an older epoch on a node in the map: %v, want plain stale", err)
	}
	if got := n.PlacedJobs(); len(got) != 1 || got[0] != "j-1" {
		t.Fatalf("placed jobs %v, want [j-1]", got)
	}
}

// drained empties a node's SyncWanted and reports whether it held a
// wake-up.
func drained(n *Node) bool {
	select {
	case <-n.SyncWanted():
		return true
	default:
		return false
	}
}

// TestFutureEpochRefusedOutsideTheMap (hostile review: writes outside the
// job's map): a client of job a-1, with a valid token, sends puts stamped
// with a's epoch + 100 to a node outside a's map that serves only b-2.
// They are refused as stale, naming the node's epoch (older than the
// client's: the SDKs take the node as behind), nothing is stored, and the
// node's agent is woken to catch up with its controller. The old table
// took any newer epoch as the node being a heartbeat behind, and stored
// the puts. A chunked put's confirm and a version's drop keep passing
// there (the writer's chunks may be on a node that left the map).
func TestFutureEpochRefusedOutsideTheMap(t *testing.T) {
	n := tokenNode(t)
	n.ApplyAck(syncAck(100, wire.JobEpoch{Job: "a-1", Gen: 90, Epoch: 3, Out: true}, wire.JobEpoch{Job: "b-2", Gen: 95, Epoch: 1}))
	if err := jobOp(t, n, wire.OpPut, "b-2", "k", jobTok("b-2", 95), 1, 0); err != nil {
		t.Fatalf("the node's own job: %v", err)
	}
	drained(n)
	usage := n.cfg.DRAM.Usage().Used
	tok := jobTok("a-1", 90)
	var we *wire.Error
	for i := range 20 {
		err := jobOp(t, n, wire.OpPut, "a-1", fmt.Sprint("k", i), tok, 3+100, 0)
		if !errors.As(err, &we) || we.Code != wire.CodeStaleEpoch || we.Epoch != 3 {
			t.Fatalf("put %d at a future epoch on a node outside the job's map: %v, want stale naming 3", i, err)
		}
	}
	if v, u := n.JobValues("a-1"), n.cfg.DRAM.Usage().Used; v != 0 || u != usage {
		t.Fatalf("the node outside a-1's map holds %d of its values; usage %d bytes, was %d", v, u, usage)
	}
	if !drained(n) {
		t.Fatal("a request at a future epoch did not wake the agent")
	}
	for _, op := range []wire.Op{wire.OpConfirm, wire.OpDropVersion} {
		if err := jobOp(t, n, op, "a-1", "k", tok, 3+100, 0); errors.Is(err, wire.ErrStaleEpoch) {
			t.Fatalf("%v at a newer epoch on a node out of the map: %v, want it taken", op, err)
		}
	}
	// The node in the map (b-2's) too refuses a future epoch until the
	// controller says so, and takes it once it does.
	if err := jobOp(t, n, wire.OpPut, "b-2", "k", jobTok("b-2", 95), 2, 0); !errors.As(err, &we) || we.Code != wire.CodeStaleEpoch || we.Epoch != 1 {
		t.Fatalf("put at the epoch after the node's on a node in the map: %v, want stale naming 1", err)
	}
	n.ApplyAck(&wire.NodeAck{Known: true, Rev: 101, Jobs: []wire.JobEpoch{{Job: "b-2", Gen: 95, Epoch: 2}}})
	if err := jobOp(t, n, wire.OpPut, "b-2", "k", jobTok("b-2", 95), 2, 0); err != nil {
		t.Fatalf("put at the epoch the controller gave since: %v", err)
	}
}

// TestPendingJobWakesTheAgent: the first request of a job the node has not
// heard of yet (pending: newer than its table) is taken, and wakes the
// agent, so the node learns the job's epoch and whether it is in its map
// within a round trip rather than an interval; later requests of the job
// do not wake it again while the wake-up waits.
func TestPendingJobWakesTheAgent(t *testing.T) {
	n := tokenNode(t)
	n.ApplyAck(syncAck(100))
	drained(n)
	if err := jobOp(t, n, wire.OpGet, "new-1", "k", jobTok("new-1", 120), 1, 0); !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("a job newer than the table: %v", err)
	}
	if !drained(n) {
		t.Fatal("a pending job's first request did not wake the agent")
	}
	if err := jobOp(t, n, wire.OpGet, "new-1", "k2", jobTok("new-1", 120), 1, 0); !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("a pending job's second request: %v", err)
	}
	if drained(n) {
		t.Fatal("a pending job's second request woke the agent again")
	}
}

// TestPendingJobRefusesPuts: a job the node has not heard of from its
// controller yet (pending) may not be in its map, so its puts, plain or
// of a value that outlives the job, are refused as by a node behind
// (stale epoch naming 0, which the SDKs send again shortly), waking the
// agent; once the controller lists the job, in the map, they are taken.
// A hostile trial's client left persisted values on a node outside its
// new job's map in that window (28.6 MiB in one put), where the job's
// final map never looked; a later one's fresh jobs put 96 MiB of plain
// values on a node outside their maps, counted nowhere and moved by no
// drain (a plain put was taken here before).
func TestPendingJobRefusesPuts(t *testing.T) {
	n := tokenNode(t)
	n.ApplyAck(syncAck(100))
	drained(n)
	var we *wire.Error
	err := jobOp(t, n, wire.OpPut, "new-1", "p", jobTok("new-1", 120), 1, wire.FlagPersist)
	if !errors.As(err, &we) || we.Code != wire.CodeStaleEpoch || we.Epoch != 0 {
		t.Fatalf("a pending job's persisted put: %v, want stale naming 0", err)
	}
	if !drained(n) {
		t.Fatal("the refused persisted put did not wake the agent")
	}
	if err := jobOp(t, n, wire.OpPut, "new-1", "k", jobTok("new-1", 120), 1, 0); !errors.As(err, &we) || we.Code != wire.CodeStaleEpoch || we.Epoch != 0 {
		t.Fatalf("a pending job's plain put: %v, want stale naming 0", err)
	}
	if err := jobOp(t, n, wire.OpGet, "new-1", "p", jobTok("new-1", 120), 1, 0); !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("get of the refused persisted put: %v, want not found", err)
	}
	n.ApplyAck(&wire.NodeAck{Known: true, Rev: 121, Jobs: []wire.JobEpoch{{Job: "new-1", Gen: 120, Epoch: 1}}})
	if err := jobOp(t, n, wire.OpPut, "new-1", "p", jobTok("new-1", 120), 1, wire.FlagPersist); err != nil {
		t.Fatalf("the persisted put once the controller listed the job: %v", err)
	}
	if err := jobOp(t, n, wire.OpPut, "new-1", "k", jobTok("new-1", 120), 1, 0); err != nil {
		t.Fatalf("the plain put once the controller listed the job: %v", err)
	}
	// A controller that does not answer within pendingStoreHold (the
	// node cut off from it) leaves the node taking them, as before.
	if err := jobOp(t, n, wire.OpPut, "new-2", "p", jobTok("new-2", 130), 1, wire.FlagPersist); err == nil {
		t.Fatal("a second pending job's persisted put was taken at once")
	}
	time.Sleep(pendingStoreHold + 50*time.Millisecond)
	if err := jobOp(t, n, wire.OpPut, "new-2", "p", jobTok("new-2", 130), 1, wire.FlagPersist); err != nil {
		t.Fatalf("a pending job's persisted put past pendingStoreHold with no word from the controller: %v", err)
	}
}

// TestOverQuotaJobRefusesPuts: a job the controller marks over its
// client's byte quota (wire.JobEpoch.OverQuota) has its puts refused with
// CodeLimit, persisted or not, on a connection that used it before too;
// its gets, stats, lists and deletes go on; once the mark is lifted its
// puts are taken again. Before, nothing on a node bounded what a live
// job stored.
func TestOverQuotaJobRefusesPuts(t *testing.T) {
	n := tokenNode(t)
	n.ApplyAck(syncAck(100, wire.JobEpoch{Job: "q-1", Gen: 99, Epoch: 1}))
	tok := jobTok("q-1", 99)
	c := dial(t, n, "q-1")
	put := func(key string, flags uint16) error {
		req := &wire.Request{Job: []byte("q-1"), Key: []byte(key), Token: tok, Epoch: 1}
		r := roundTrip(t, c, wire.OpPut, flags, req, []byte("value of "+key))
		return r.Err()
	}
	if err := put("before", 0); err != nil {
		t.Fatal(err)
	}
	n.ApplyAck(&wire.NodeAck{Known: true, State: wire.NodeActive, Rev: 101, Jobs: []wire.JobEpoch{{Job: "q-1", Gen: 99, Epoch: 1, OverQuota: true}}})
	for _, flags := range []uint16{0, wire.FlagPersist} {
		err := put("more", flags)
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != wire.CodeLimit || !strings.Contains(we.Msg, "byte quota") {
			t.Fatalf("put (flags %#x) of a job over its quota: %v, want limit naming the byte quota", flags, err)
		}
		if err := jobOp(t, n, wire.OpPut, "q-1", "more", tok, 1, flags); !errors.Is(err, wire.ErrLimit) {
			t.Fatalf("put (flags %#x) on a new connection: %v", flags, err)
		}
	}
	for _, op := range []wire.Op{wire.OpGet, wire.OpStat, wire.OpList, wire.OpDelete} {
		if err := jobOp(t, n, op, "q-1", "before", tok, 1, 0); err != nil {
			t.Fatalf("%s of a job over its quota: %v", op, err)
		}
	}
	n.ApplyAck(&wire.NodeAck{Known: true, State: wire.NodeActive, Rev: 102, Jobs: []wire.JobEpoch{{Job: "q-1", Gen: 99, Epoch: 1}}})
	if err := put("after", 0); err != nil {
		t.Fatalf("put once the mark was lifted: %v", err)
	}
}

// TestJobBoundedOnANodeByItsClientsQuota (hostile re-check, 2026-12-07):
// a job whose entry bounds what it stores on a node (wire.JobEpoch.
// MaxBytes, its client's byte quota) has a put past it refused with
// CodeLimit, whatever the controller has marked; a put within it, and
// one after deletes made room, are taken. Before, one job put 512 MiB on
// a 64 MiB quota in the second before the controller marked it. The job
// holding values costs jobEntryCost of the bound beside them.
func TestJobBoundedOnANodeByItsClientsQuota(t *testing.T) {
	n := tokenNode(t)
	n.ApplyAck(syncAck(100, wire.JobEpoch{Job: "m-1", Gen: 99, Epoch: 1, MaxBytes: 4<<10 + jobEntryCost}))
	tok := jobTok("m-1", 99)
	c := dial(t, n, "m-1")
	put := func(key string, size int) error {
		req := &wire.Request{Job: []byte("m-1"), Key: []byte(key), Token: tok, Epoch: 1}
		r := roundTrip(t, c, wire.OpPut, 0, req, make([]byte, size))
		return r.Err()
	}
	if err := put("a", 1<<10); err != nil {
		t.Fatalf("a put within the bound: %v", err)
	}
	err := put("b", 4<<10)
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeLimit || !strings.Contains(we.Msg, "byte quota") {
		t.Fatalf("a put past the job's bound on the node: %v, want limit naming the byte quota", err)
	}
	if err := jobOp(t, n, wire.OpDelete, "m-1", "a", tok, 1, 0); err != nil {
		t.Fatal(err)
	}
	if err := put("b", 3<<10); err != nil {
		t.Fatalf("a put once a delete made room: %v", err)
	}
}
