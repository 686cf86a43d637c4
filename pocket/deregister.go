package pocket

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// DropResult is what a job's deregistration did on the nodes of its map,
// as the controller reported it (wire.DropResult, its failures split by
// wire.DropResult.Split). Whatever it holds, the controller deregistered
// the job: it is ended and its token revoked.
type DropResult struct {
	// Nodes dropped the job's data: Values stored records (values and the
	// chunks of large ones) and Bytes bytes. Values put with Persist stay
	// and are not counted.
	Nodes  int
	Values uint64
	Bytes  int64
	// Dead are the addresses of the map's dead nodes, in no set order:
	// their copy of the job's values, persisted ones too, went with them.
	// Not a failure: nothing is left there to drop. It is the
	// controller's view then (a node whose heartbeats stopped may serve
	// on, or come back with the persisted values), so the Job and its
	// Credential mark them suspect, not dead (Map.Suspect).
	Dead []string
	// Failures are the other nodes that did not drop the job's data, one
	// entry a node, as the controller wrote it ("drop job J at ADDR: ...",
	// or the controller's whole message when its entries could not be
	// told apart): they may still hold it. Non-empty, Deregister returns
	// a *DropError.
	Failures []string
	// Failed is the number of nodes that did not drop the job's data, dead
	// ones included, and Message the controller's text of their failures
	// ("" when none), entries joined by "; ", as it wrote them.
	Failed  int
	Message string
	// Unreported says the reply of the request that ended the job was
	// lost (the connection failed after it was sent) and the request sent
	// again found the job ended: what its nodes dropped is not known, and
	// the figures above are zero. Nodes drop a revoked job's data when
	// they hear of the revocation (their next heartbeat).
	Unreported bool
}

// deregisterJob asks ctl to deregister job. A request whose reply was
// lost after it was sent (metaclient.ErrOutcomeUnknown: the controller
// stopped or failed over meanwhile) is sent again, up to twice, within
// ctx: deregistering is safe to repeat. A job found ended then (by the
// lost request, another client's, or its token's expiry) counts as
// deregistered, its result Unreported. Before, the call failed "outcome
// unknown" and, when the lost request had not been applied, the job held
// its allotment until its token expired (a new user's trial: 3 of about
// 4,900 deregistrations across four stops of the active controller, one
// of them not applied).
func deregisterJob(ctx context.Context, ctl Controller, job string, tok []byte) (DropResult, error) {
	res, err := ctl.DeregisterJob(ctx, job, tok)
	for i := 0; i < 2 && errors.Is(err, metaclient.ErrOutcomeUnknown) && ctx.Err() == nil; i++ {
		again, aerr := ctl.DeregisterJob(ctx, job, tok)
		switch {
		case aerr == nil:
			return again, nil
		case errors.Is(aerr, wire.ErrUnknownJob):
			return DropResult{Unreported: true}, nil
		case !errors.Is(aerr, metaclient.ErrOutcomeUnknown):
			// Not settled: the first request's outcome is still unknown.
			return DropResult{}, fmt.Errorf("%w (asked again: %v)", err, aerr)
		}
	}
	return res, err
}

// dropResultFromWire converts the controller's answer.
func dropResultFromWire(r *wire.DropResult) DropResult {
	dead, others := r.Split()
	return DropResult{Nodes: int(r.Nodes), Values: r.Values, Bytes: r.Bytes, Dead: dead, Failures: others,
		Failed: int(r.Failed), Message: r.Message}
}

// DropError is Job.Deregister's error when the controller deregistered the
// job (it is ended, its token revoked: the Job reads its persisted values
// as an ended job's from then on) but nodes of its map other than dead ones
// did not drop its data: Result.Failures names them. They may hold it
// until the controller's orphan reconciliation has them drop it, once
// they report holding it (package controller, orphans.go). Match it with
// errors.As; any other error of Deregister means the job was not
// deregistered.
type DropError struct {
	Job    string
	Result DropResult
}

func (e *DropError) Error() string {
	s := fmt.Sprintf("pocket: job %s deregistered, but %d node(s) did not drop its data (they may still hold it): %s",
		e.Job, len(e.Result.Failures), strings.Join(e.Result.Failures, "; "))
	if len(e.Result.Dead) > 0 {
		s += fmt.Sprintf("; dead node(s), whose copy went with them: %s", strings.Join(e.Result.Dead, ", "))
	}
	return s
}

// Deregistration returns what this handle's deregistration (Deregister)
// did on the job's nodes, and true, once the controller deregistered the
// job through it, whether Deregister returned nil or a *DropError; the
// zero DropResult and false before that, or when Deregister failed
// otherwise (the job was not deregistered), or for a handle opened from a
// credential.
func (j *Job) Deregistration() (DropResult, bool) {
	if r := j.dropped.Load(); r != nil {
		return *r, true
	}
	return DropResult{}, false
}

// markSuspect marks the nodes at addrs that are in the retired job's map
// suspect in it (Map.Suspect), as the controller named them dead at its
// deregistration (DropResult.Dead). That is a moment's view: a node whose
// heartbeats stopped may be serving still, or come back with the job's
// persisted values (the controller's final map then names it active), so
// requests still try it, but one that refuses connections is gone at once
// instead of after goneWait (5 s) of dialing (gone.go).
func (j *Job) markSuspect(addrs []string) {
	j.goneMu.Lock()
	defer j.goneMu.Unlock()
	m := j.snapshot()
	var suspect map[string]bool
	for _, a := range addrs {
		if m.Dead[a] || m.Suspect[a] || !slices.ContainsFunc(m.Nodes, func(n Node) bool { return n.Addr == a }) {
			continue
		}
		if suspect == nil {
			suspect = maps.Clone(m.Suspect)
			if suspect == nil {
				suspect = map[string]bool{}
			}
		}
		suspect[a] = true
	}
	if suspect != nil {
		m.Suspect = suspect
		j.setMap(m)
	}
}
