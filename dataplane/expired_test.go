package dataplane

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// TestExpiredJobsRefusalsSayExpired: a job the controller revoked once its
// token had expired is refused saying its token expired, and when, while
// dropping, revoked or retired (its persisted values read-only); a
// deregistered job's refusals still say deregistered. On the old code
// every refusal of an ended job said "the job was deregistered" (a put
// to an expired job answered "token revoked: the job was deregistered").
func TestExpiredJobsRefusalsSayExpired(t *testing.T) {
	var j jobTable
	j.init()
	exp := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	j.apply(&wire.NodeAck{Rev: 10, Full: true, Jobs: []wire.JobEpoch{
		{Job: "e-1", Gen: 1, Epoch: 3, Expires: exp}, {Job: "d-1", Gen: 2, Epoch: 3, Expires: exp}}}, time.Now())
	for _, job := range []string{"e-1", "d-1"} {
		if err := j.check([]byte(job), 3); err != nil {
			t.Fatalf("check %s while live: %v", job, err)
		}
	}
	// d-1 is deregistered before its expiry, e-1 revoked after its own.
	j.apply(&wire.NodeAck{Rev: 11, Jobs: []wire.JobEpoch{{Job: "d-1", Gen: 2, Revoked: true, Expires: exp}}}, exp.Add(-time.Minute))
	j.apply(&wire.NodeAck{Rev: 12, Jobs: []wire.JobEpoch{{Job: "e-1", Gen: 1, Revoked: true, Expires: exp}}}, exp.Add(time.Second))
	want := "token expired at " + exp.UTC().Format(time.RFC3339)
	check := func(what, job string, op opClass, code wire.Code, expired bool) {
		t.Helper()
		err := j.checkOp([]byte(job), 3, op)
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != code || strings.Contains(err.Error(), want) != expired ||
			strings.Contains(err.Error(), "deregistered") == expired {
			t.Errorf("%s: %v; want code %v, saying %q: %v", what, err, code, want, expired)
		}
	}
	check("a put of the expired job, dropping", "e-1", opStore, wire.CodeRevoked, true)
	check("a read of the expired job, dropping", "e-1", opRead, wire.CodeBusy, true)
	check("a put of the deregistered job, dropping", "d-1", opStore, wire.CodeRevoked, false)
	j.dropped("e-1", 100) // persisted values remain: retired
	j.dropped("d-1", 0)   // none: revoked
	check("a put of the expired job, retired", "e-1", opStore, wire.CodeRevoked, true)
	check("a read of the deregistered job, revoked", "d-1", opRead, wire.CodeRevoked, false)
}
