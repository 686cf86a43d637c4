package pocket

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// scriptedCtl answers DeregisterJob with its answers in turn (the last
// one again once they run out) and GetMap with the job's map.
type scriptedCtl struct {
	fixedCtl
	answers []error
	calls   int
}

func (c *scriptedCtl) DeregisterJob(context.Context, string, []byte) (DropResult, error) {
	err := c.answers[min(c.calls, len(c.answers)-1)]
	c.calls++
	if err != nil {
		return DropResult{}, err
	}
	return DropResult{Nodes: 2, Values: 7}, nil
}

// TestDeregisterAsksAgainAfterALostReply: a deregistration whose reply
// was lost after it was sent is sent again; a job found ended then counts
// as deregistered (Unreported), and one deregistered by the second
// request gives its result. An answer that settles nothing keeps the
// outcome unknown. On the old code every case but the last failed
// "outcome unknown" after one request.
func TestDeregisterAsksAgainAfterALostReply(t *testing.T) {
	lost := &metaclient.OutcomeUnknownError{Op: wire.OpDeregisterJob, Addr: "ctl", Err: io.EOF}
	ended := wire.Errorf(wire.CodeUnknownJob, "job j-1 is not registered: it was deregistered at ...")
	down := errors.New("no controller answered")
	for _, c := range []struct {
		name       string
		answers    []error
		calls      int
		unknown    bool // the error still says outcome unknown
		unreported bool
	}{
		{"found ended", []error{lost, ended}, 2, false, true},
		{"deregistered then", []error{lost, nil}, 2, false, false},
		{"lost twice, then ended", []error{lost, lost, ended}, 3, false, true},
		{"lost every time", []error{lost}, 3, true, false},
		{"not settled", []error{lost, down}, 2, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctl := &scriptedCtl{answers: c.answers}
			ctl.set(Map{Job: "j-1", Token: []byte("tok"), Nodes: []Node{{Addr: "127.0.0.1:1", Weight: 1}}})
			s := NewStore(ctl, Config{})
			defer s.Close()
			j, err := s.OpenJob(context.Background(), "j-1", []byte("tok"))
			if err != nil {
				t.Fatal(err)
			}
			err = j.Deregister(context.Background())
			if ctl.calls != c.calls {
				t.Errorf("%d deregistration requests, want %d", ctl.calls, c.calls)
			}
			if got := errors.Is(err, metaclient.ErrOutcomeUnknown); got != c.unknown || !c.unknown && err != nil {
				t.Fatalf("Deregister: %v; want outcome unknown %v", err, c.unknown)
			}
			res, done := j.Deregistration()
			if done == c.unknown || j.Ended() == c.unknown || res.Unreported != c.unreported {
				t.Fatalf("after Deregister: result %+v (given %v), ended %v; want given and ended %v, unreported %v",
					res, done, j.Ended(), !c.unknown, c.unreported)
			}
		})
	}
}

// TestDeregisterAgainAfterAnUnknownOutcome (a new user's trial,
// 2026-12-07): a Deregister whose outcome stayed unknown (its context
// ended: it did not ask again), called again on the same Job that finds
// the job ended, returns nil, its result Unreported; a Job that never
// sent one still reports the controller's unknown job. Before, the second
// call failed "is not registered: it was deregistered at ...", with Ended
// true.
func TestDeregisterAgainAfterAnUnknownOutcome(t *testing.T) {
	lost := &metaclient.OutcomeUnknownError{Op: wire.OpDeregisterJob, Addr: "ctl", Err: context.DeadlineExceeded}
	ended := wire.Errorf(wire.CodeUnknownJob, "job j-1 is not registered: it was deregistered at ...")
	for _, sentBefore := range []bool{true, false} {
		answers := []error{ended}
		if sentBefore {
			answers = []error{lost, ended}
		}
		ctl := &scriptedCtl{answers: answers}
		ctl.set(Map{Job: "j-1", Token: []byte("tok"), Nodes: []Node{{Addr: "127.0.0.1:1", Weight: 1}}})
		s := NewStore(ctl, Config{})
		j, err := s.OpenJob(context.Background(), "j-1", []byte("tok"))
		if err != nil {
			t.Fatal(err)
		}
		if sentBefore {
			cut, cancel := context.WithCancel(context.Background())
			cancel() // deregisterJob does not ask again once its context ended
			if err := j.Deregister(cut); !errors.Is(err, metaclient.ErrOutcomeUnknown) {
				t.Fatalf("the first Deregister: %v, want its outcome unknown", err)
			}
		}
		err = j.Deregister(context.Background())
		res, done := j.Deregistration()
		switch {
		case sentBefore && (err != nil || !done || !res.Unreported):
			t.Errorf("Deregister again after an unknown outcome, the job found ended: %v, result %+v (given %v); want nil, unreported", err, res, done)
		case !sentBefore && !errors.Is(err, wire.ErrUnknownJob):
			t.Errorf("Deregister of a job ended elsewhere: %v, want unknown job", err)
		}
		s.Close()
	}
}
