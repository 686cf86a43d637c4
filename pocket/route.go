package pocket

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/wire"
)

// target is one request's destination and the job fields it carries.
type target struct {
	addr  string
	old   string // the owner under the whole map when it drains (drain.go)
	dead  bool
	job   []byte
	token []byte
	epoch uint64
	flags uint16
}

func tierFlags(t Tier) uint16 {
	if t == TierNVMe {
		return wire.FlagTierNVMe
	}
	return 0
}

// route picks the node of (key, chunk) from the current map: its owner
// among the nodes that are not draining, and, when that differs, its owner
// under the whole map if that one is draining (see drain.go).
func (j *Job) route(key []byte, chunk uint32) target {
	j.mu.RLock()
	defer j.mu.RUnlock()
	addr := j.live.Node(j.live.Pick(key, chunk)).ID
	t := target{addr: addr, dead: j.m.Dead[addr], job: j.jobBytes, token: j.m.Token, epoch: j.m.Epoch, flags: tierFlags(j.m.Tier)}
	if j.live != j.set {
		if o := j.set.Node(j.set.Pick(key, chunk)).ID; o != addr && j.m.Draining[o] {
			t.old = o
		}
	}
	return t
}

// targets lists every node of the map, for fan-out calls.
func (j *Job) targets() []target {
	j.mu.RLock()
	defer j.mu.RUnlock()
	ts := make([]target, len(j.m.Nodes))
	for i, n := range j.m.Nodes {
		ts[i] = target{addr: n.ID, dead: j.m.Dead[n.ID], job: j.jobBytes, token: j.m.Token, epoch: j.m.Epoch, flags: tierFlags(j.m.Tier)}
	}
	return ts
}

// refresh fetches the job's map again after a node said ours is stale.
func (j *Job) refresh(ctx context.Context) error {
	if j.s.ctl == nil {
		return ErrNoController
	}
	m := j.snapshot()
	nm, err := j.s.ctl.GetMap(ctx, m.Job, m.Token)
	if err != nil {
		return err
	}
	j.setMap(nm)
	return nil
}

// do sends one request for (key, chunk), refreshing the map and retrying
// once when a node reports the map stale or itself draining (the client's
// map predates the drain).
func (j *Job) do(ctx context.Context, op wire.Op, flags uint16, key []byte, chunk uint32, payload, dst []byte) (client.Reply, error) {
	for attempt := 0; ; attempt++ {
		t := j.route(key, chunk)
		if t.dead {
			return client.Reply{}, &wire.Error{Code: wire.CodeUnavailable, Msg: "node " + t.addr + " is dead"}
		}
		var r client.Reply
		var err error
		if t.old != "" {
			r, err = j.drainDo(ctx, t, op, flags, key, payload, dst)
		} else {
			req := wire.Request{Job: t.job, Key: key, Token: t.token, Epoch: t.epoch}
			r, err = j.s.data.Do(ctx, t.addr, op, flags|t.flags, &req, payload, dst)
		}
		if attempt == 0 && (errors.Is(err, wire.ErrStaleEpoch) || errors.Is(err, wire.ErrDraining)) && j.s.ctl != nil {
			if rerr := j.refresh(ctx); rerr != nil {
				return r, fmt.Errorf("%w (map refresh: %v)", err, rerr)
			}
			continue
		}
		return r, err
	}
}

// fanOut sends the same request to every live node of the job at once and
// returns each node's reply in map order. It is used for deletes: a dead
// node's data is gone with it, so skipping it loses nothing.
func (j *Job) fanOut(ctx context.Context, op wire.Op, flags uint16, req wire.Request) ([]client.Reply, error) {
	ts := j.targets()
	replies := make([]client.Reply, len(ts))
	errs := make([]error, len(ts))
	var wg sync.WaitGroup
	for i, t := range ts {
		if t.dead {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := req
			r.Job, r.Token, r.Epoch = t.job, t.token, t.epoch
			replies[i], errs[i] = j.s.data.Do(ctx, t.addr, op, flags|t.flags, &r, nil, nil)
		}()
	}
	wg.Wait()
	return replies, errors.Join(errs...)
}
