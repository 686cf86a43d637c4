package workload

import (
	"context"
	"errors"
	"fmt"

	"github.com/pocketstore/pocket/pocket"
	"github.com/pocketstore/pocket/wire"
)

// pocketBackend is a job of our store through the SDK.
type pocketBackend struct {
	s *pocket.Store
	j *pocket.Job
}

// dialController connects the SDK to a controller.
func dialController(ctx context.Context, addr string) (*pocket.Store, error) {
	return pocket.Dial(ctx, addr, pocket.Config{})
}

// staticController hands out one fixed map: a job on known nodes without
// a controller. Unlike Store.OpenStatic it can name the NVMe tier.
type staticController struct{ m pocket.Map }

func (c staticController) RegisterJob(context.Context, string, pocket.Hints) (pocket.Map, error) {
	return c.m, nil
}
func (c staticController) DeregisterJob(context.Context, string, []byte) (pocket.DropResult, error) {
	return pocket.DropResult{}, nil
}
func (c staticController) GetMap(context.Context, string, []byte) (pocket.Map, error) {
	return c.m, nil
}
func (c staticController) Close() error { return nil }

// staticMap is the map of a static job over t.Addrs with equal weights.
func staticMap(t Target) (pocket.Map, error) {
	m := pocket.Map{Job: t.Job, Tier: pocket.TierDRAM}
	switch t.Tier {
	case 0:
	case wire.TierDRAM, wire.TierNVMe:
		m.Tier = t.Tier
	default:
		return m, fmt.Errorf("%w: tier %v", ErrBadTarget, t.Tier)
	}
	if m.Job == "" {
		m.Job = "workload"
	}
	for _, a := range t.Addrs {
		m.Nodes = append(m.Nodes, pocket.Node{Addr: a, Weight: 1})
	}
	if len(m.Nodes) == 0 {
		return m, fmt.Errorf("%w: no pocket nodes", ErrBadTarget)
	}
	return m, nil
}

func openPocket(ctx context.Context, t Target) (Backend, error) {
	var s *pocket.Store
	if t.Controller != "" {
		var err error
		if s, err = dialController(ctx, t.Controller); err != nil {
			return nil, err
		}
	} else {
		m, err := staticMap(t)
		if err != nil {
			return nil, err
		}
		s = pocket.NewStore(staticController{m}, pocket.Config{})
	}
	j, err := s.OpenJob(ctx, t.Job, t.Token)
	if err != nil {
		s.Close()
		return nil, err
	}
	return &pocketBackend{s: s, j: j}, nil
}

// RegisterJob registers a job through the controller named by
// t.Controller and returns the target every worker opens (t with the job
// id and token); release deregisters it, which frees all of its data.
func RegisterJob(ctx context.Context, t Target, name string, h pocket.Hints) (Target, func(context.Context) error, error) {
	s, err := dialController(ctx, t.Controller)
	if err != nil {
		return t, nil, err
	}
	j, err := s.RegisterJob(ctx, name, h)
	if err != nil {
		s.Close()
		return t, nil, err
	}
	t.Job, t.Token = j.ID(), j.Token()
	release := func(ctx context.Context) error {
		return errors.Join(j.Deregister(ctx), s.Close())
	}
	return t, release, nil
}

func (p *pocketBackend) Put(ctx context.Context, key string, value []byte) error {
	return p.j.Put(ctx, key, value)
}

func (p *pocketBackend) Get(ctx context.Context, key string, dst []byte) ([]byte, error) {
	v, err := p.j.GetInto(ctx, key, dst)
	if errors.Is(err, pocket.ErrNotFound) {
		return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return v, err
}

func (p *pocketBackend) Exists(ctx context.Context, key string) (bool, error) {
	return p.j.Exists(ctx, key)
}

func (p *pocketBackend) Delete(ctx context.Context, key string) error {
	err := p.j.Delete(ctx, key)
	if errors.Is(err, pocket.ErrNotFound) {
		return nil
	}
	return err
}

func (p *pocketBackend) Close() error { return p.s.Close() }
