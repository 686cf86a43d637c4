package pocket

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// openEnded opens job id with tok until the handle says the job ended (its
// token expired and the controller's sweeper ended it), within 20 s.
func openEnded(t *testing.T, s *Store, id string, tok []byte) *Job {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	for {
		j, err := s.OpenJob(ctx, id, tok)
		if err == nil && j.Ended() {
			return j
		}
		if err != nil && !errors.Is(err, wire.ErrRevoked) {
			t.Fatalf("open job %s after its token's expiry: %v", id, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s not ended 20 s on (last: handle %v, %v)", id, j != nil, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestExpiredJobOpensWithItsToken (new user's trial): a job registered
// with a short token lifetime puts a persisted value and expires. Its
// token then opens it as an ended job on the final map the controller
// kept: the value is read, listed alone (the other value was dropped),
// refused a put, handed on by the handle's Credential (opened without a
// controller), and deleted; once deleted, no node reports it and the
// token opens nothing (unknown job). Another job's token, or garbage,
// gets bad token all along. On the old code the expired job's token
// opened nothing: unknown job, and its value could only go with a drain
// that discarded it.
func TestExpiredJobOpensWithItsToken(t *testing.T) {
	c := newTestCluster(t, 2, 64<<20)
	ctx := context.Background()
	s := c.store()
	m, err := c.ctl.RegisterJobFrom("", &wire.JobRegister{Name: "ttljob", TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	live, err := s.OpenJob(ctx, m.Job, m.Token)
	if err != nil || live.Ended() {
		t.Fatalf("open the live job: %v (ended %v)", err, err == nil && live.Ended())
	}
	if err := live.Put(ctx, "p/a", []byte("keepme"), Persist()); err != nil {
		t.Fatal(err)
	}
	if err := live.Put(ctx, "p/b", []byte("goes")); err != nil {
		t.Fatal(err)
	}
	other, err := s.RegisterJob(ctx, "other", Hints{})
	if err != nil {
		t.Fatal(err)
	}

	j := openEnded(t, s, m.Job, m.Token)
	if got, err := j.Get(ctx, "p/a"); err != nil || string(got) != "keepme" {
		t.Fatalf("persisted value through the expired job's token: %q %v", got, err)
	}
	es, err := j.List(ctx, "p/")
	if err != nil || len(es) != 1 || es[0].Name != "p/a" {
		t.Fatalf("listing through the expired job's token: %+v %v, want p/a alone", es, err)
	}
	if err := j.Put(ctx, "p/c", []byte("x"), Persist()); !errors.Is(err, wire.ErrRevoked) {
		t.Fatalf("put through the expired job's token: %v, want revoked", err)
	}
	for what, tok := range map[string][]byte{"another job's token": other.Token(), "garbage": []byte("garbage")} {
		if _, err := s.OpenJob(ctx, m.Job, tok); !errors.Is(err, wire.ErrBadToken) {
			t.Fatalf("open the expired job with %s: %v, want bad token, as for a job that never was", what, err)
		}
	}

	alone := NewStore(nil, Config{})
	defer alone.Close()
	cj, err := alone.OpenCredential(j.Credential())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := cj.Get(ctx, "p/a"); err != nil || string(got) != "keepme" {
		t.Fatalf("persisted value through the expired job's credential: %q %v", got, err)
	}
	if err := cj.Delete(ctx, "p/a"); err != nil {
		t.Fatalf("delete through the credential: %v", err)
	}
	if _, err := j.Get(ctx, "p/a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the value after its delete: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := s.OpenJob(ctx, m.Job, m.Token)
		if errors.Is(err, wire.ErrUnknownJob) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the final map still kept 20 s after its last value went: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// endedController answers every GetMap with its map, marked ended.
type endedController struct{ m Map }

func (e *endedController) RegisterJob(context.Context, string, Hints) (Map, error) {
	return Map{}, errors.New("not here")
}
func (e *endedController) DeregisterJob(context.Context, string, []byte) (DropResult, error) {
	return DropResult{}, errors.New("not here")
}
func (e *endedController) GetMap(context.Context, string, []byte) (Map, error) { return e.m, nil }
func (e *endedController) Close() error                                        { return nil }

// TestOpenCredentialOfAnEndedJob: a credential opened while the
// controller answers the job's final map gives an ended handle: on the
// controller's map when it is newer than the credential's (the credential
// was taken while the job ran, and its map changed before it ended), on
// the credential's own otherwise (the same map, or one marking a node
// draining that the controller's final map no longer does).
func TestOpenCredentialOfAnEndedJob(t *testing.T) {
	cm := Map{Job: "j-1", Token: []byte{1}, Tier: TierDRAM, Epoch: 3,
		Nodes: []Node{{Addr: "127.0.0.1:7001", Weight: 1}, {Addr: "127.0.0.1:7002", Weight: 1}}}
	taken := &Job{}
	taken.setMap(cm)
	cred := taken.Credential()
	final := Map{Job: "j-1", Token: []byte{1}, Tier: TierDRAM, Epoch: 5, Nodes: []Node{{Addr: "127.0.0.1:7003", Weight: 1}}, Ended: true}
	for _, tc := range []struct {
		epoch uint64
		want  string
	}{{5, "127.0.0.1:7003"}, {3, "127.0.0.1:7001"}} {
		f := final
		f.Epoch = tc.epoch
		s := NewStore(&endedController{m: f}, Config{})
		j, err := s.OpenCredential(cred)
		if err != nil {
			t.Fatal(err)
		}
		if !j.Ended() || j.Map().Nodes[0].Addr != tc.want {
			t.Errorf("final map at epoch %d: ended %v, nodes %+v; want ended on %s", tc.epoch, j.Ended(), j.Map().Nodes, tc.want)
		}
		s.Close()
	}
}
