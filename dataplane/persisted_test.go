package dataplane

import (
	"bytes"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestPersistedJobsReport: a node reports the ended jobs whose persisted
// values it keeps, the largest first, with their bytes and the totals of
// all; not an ended job that kept nothing, not a live job's persisted
// values (a drain moves those), not a job whose kept values were deleted.
// A job still dropping counts with its bytes so far: what stays is not
// known yet.
func TestPersistedJobsReport(t *testing.T) {
	n, f := faultyTokenNode(t)
	jobs := []wire.JobEpoch{{Job: "a-1", Gen: 99}, {Job: "b-1", Gen: 99}, {Job: "c-1", Gen: 99}, {Job: "live-1", Gen: 99}, {Job: "r-1", Gen: 99}}
	n.ApplyAck(syncAck(100, jobs...))
	put := func(job, key string, size int, flags uint16) {
		t.Helper()
		if err := jobOpValue(t, n, job, key, jobTok(job, 99), bytes.Repeat([]byte{'v'}, size), flags); err != nil {
			t.Fatal(err)
		}
	}
	put("a-1", "kept", 100, wire.FlagPersist)
	put("a-1", "tmp", 5000, 0)
	put("b-1", "tmp", 100, 0)
	put("c-1", "kept", 3000, wire.FlagPersist)
	put("live-1", "kept", 100, wire.FlagPersist)
	put("r-1", "kept", 10, wire.FlagPersist)
	n.ApplyAck(&wire.NodeAck{Known: true, Rev: 101, Jobs: []wire.JobEpoch{
		{Job: "a-1", Gen: 99, Revoked: true}, {Job: "b-1", Gen: 99, Revoked: true}, {Job: "c-1", Gen: 99, Revoked: true}}})
	n.bg.wait() // drops run off the heartbeat's goroutine (bgdrop.go)
	a, c := n.jobUsage([]byte("a-1")), n.jobUsage([]byte("c-1"))
	list, k, b := n.PersistedJobs(wire.MaxPersistedJobs)
	if len(list) != 2 || list[0] != (wire.HeldJob{Job: "c-1", Bytes: c}) || list[1] != (wire.HeldJob{Job: "a-1", Bytes: a}) ||
		k != 2 || b != a+c || a == 0 || c <= a {
		t.Fatalf("persisted %v, %d job(s), %d bytes; want c-1 %d then a-1 %d", list, k, b, c, a)
	}
	if list, k, b := n.PersistedJobs(1); len(list) != 1 || list[0].Job != "c-1" || k != 2 || b != a+c {
		t.Fatalf("one named: %v, %d job(s), %d bytes; want c-1 and the totals of both", list, k, b)
	}
	// A job dropping its values counts with what it holds meanwhile.
	entered, release := holdDrops(f, "r-1")
	done := revokeAsync(n, "r-1")
	<-entered
	r := n.jobUsage([]byte("r-1"))
	if list, k, _ := n.PersistedJobs(wire.MaxPersistedJobs); k != 3 || len(list) != 3 || list[2] != (wire.HeldJob{Job: "r-1", Bytes: r}) {
		t.Fatalf("during r-1's drop: %v, %d job(s)", list, k)
	}
	release()
	<-done
	// Its kept values deleted, a job is no longer reported.
	if err := jobOp(t, n, wire.OpDelete, "a-1", "kept", jobTok("a-1", 99), 0, 0); err != nil {
		t.Fatal(err)
	}
	if list, k, b := n.PersistedJobs(wire.MaxPersistedJobs); k != 2 || b != c+r || list[0].Job != "c-1" || list[1].Job != "r-1" {
		t.Fatalf("after a-1's delete: %v, %d job(s), %d bytes", list, k, b)
	}
}

// jobOpValue puts value under key for job with flags.
func jobOpValue(t testing.TB, n *Node, job, key string, tok, value []byte, flags uint16) error {
	t.Helper()
	c := dial(t, n, job)
	r := roundTrip(t, c, wire.OpPut, flags, &wire.Request{Job: []byte(job), Key: []byte(key), Token: tok}, value)
	return r.Err()
}
