package pocket

import (
	"context"
	"fmt"
	"os"

	"github.com/pocketstore/pocket/internal/pki"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// Dial connects to the controller at addr (host:port), or to the
// controllers of a comma-separated list of them ("a:7070,b:7070,c:7070",
// several controllers on etcd: calls go to the elected one and follow it
// when another takes over). Nothing is sent until a job is registered or
// opened. While no controller answers (a restart, a failover), calls that
// are safe to repeat wait for one until their context ends. The controller is reached over mutual TLS with
// cfg.TLS or, when that is nil and POCKET_TLS_DIR is set, with the client
// certificate in that directory (as pocket up or pocket cert issue made
// it); else (or with cfg.Insecure, or POCKET_INSECURE=1 when cfg.TLS is
// nil: pki.InsecureFromEnv) over plain TCP.
func Dial(ctx context.Context, addr string, cfg Config) (*Store, error) {
	if addr == "" {
		return nil, fmt.Errorf("pocket: no controller address")
	}
	if cfg.Insecure && cfg.TLS != nil {
		return nil, fmt.Errorf("pocket: Config.Insecure with Config.TLS set")
	}
	if cfg.TLS == nil && !cfg.Insecure {
		insecure, err := pki.InsecureFromEnv()
		if err != nil {
			return nil, fmt.Errorf("pocket: %w", err)
		}
		cfg.Insecure = insecure
	}
	if cfg.TLS == nil && !cfg.Insecure {
		if dir := os.Getenv(pki.EnvTLSDir); dir != "" {
			tc, err := pki.ClientConfig(dir, pki.Members[pki.RoleClient])
			if err != nil {
				return nil, fmt.Errorf("pocket: POCKET_TLS_DIR: %w", err)
			}
			cfg.TLS = tc
		}
	}
	mc := metaclient.New(addr, metaclient.Options{TLS: cfg.TLS, RetryFor: cfg.ControllerWait})
	return NewStore(&metaController{mc: mc}, cfg), nil
}

// metaController adapts metaclient to the SDK's Controller.
type metaController struct {
	mc *metaclient.Client
}

func (m *metaController) RegisterJob(ctx context.Context, name string, h Hints) (Map, error) {
	pm, err := m.mc.RegisterJob(ctx, name, wire.JobHints{
		Lambdas: uint32(h.Lambdas), CapacityBytes: h.CapacityBytes, PeakMbps: float64(h.PeakMbps), LatencySensitive: h.LatencySensitive,
	})
	if err != nil {
		return Map{}, err
	}
	return fromWire(pm), nil
}

func (m *metaController) DeregisterJob(ctx context.Context, job string, tok []byte) (DropResult, error) {
	res, err := m.mc.DeregisterJob(ctx, job, tok)
	if err != nil {
		return DropResult{}, err
	}
	return dropResultFromWire(res), nil
}

func (m *metaController) GetMap(ctx context.Context, job string, tok []byte) (Map, error) {
	pm, err := m.mc.GetMapOrEnded(ctx, job, tok)
	if err != nil {
		return Map{}, err
	}
	return fromWire(pm), nil
}

func (m *metaController) Close() error { return m.mc.Close() }

// setFlag sets m[addr], making m when nil.
func setFlag(m map[string]bool, addr string) map[string]bool {
	if m == nil {
		m = map[string]bool{}
	}
	m[addr] = true
	return m
}

// fromWire converts the controller's map. Dead nodes stay in the map (the
// keys they held are unavailable, not elsewhere) and are marked so calls
// fail at once instead of waiting for a dial.
func fromWire(pm *wire.PlacementMap) Map {
	m := Map{Job: pm.Job, Token: pm.Token, Tier: Tier(pm.Tier), Epoch: pm.Epoch, Lost: lostFromWire(pm.Lost), Ended: pm.Ended, Expires: pm.Expires,
		Alloc: Allotment{Mbps: pm.AllocMbps, Bytes: pm.AllocBytes, SizedFrom: pm.Sized.String(), Note: pm.Note,
			QuotaBytes: pm.Quota.Bytes, QuotaLeftBytes: pm.Quota.LeftBytes, QuotaMbps: pm.Quota.Mbps, QuotaLeftMbps: pm.Quota.LeftMbps}}
	for _, n := range pm.Nodes {
		m.Nodes = append(m.Nodes, Node{Addr: n.Addr, Weight: n.Weight, Since: n.Since})
		if n.State == wire.NodeDead {
			if m.Dead == nil {
				m.Dead = map[string]bool{}
			}
			m.Dead[n.Addr] = true
		}
		switch n.State {
		case wire.NodeDraining:
			m.Draining = setFlag(m.Draining, n.Addr)
		case wire.NodeJoining:
			m.Joining = setFlag(m.Joining, n.Addr)
		}
	}
	return m
}
