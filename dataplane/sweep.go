package dataplane

import (
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// Chunks no manifest names
//
// A persist-after-job value larger than a chunk is its chunks, filed here
// under their object version (versions.go), and a manifest naming that
// version, on the node that owns the object's key. Chunks whose manifest
// is gone outlive their job with nothing to name them: a writer that
// confirmed its chunks and stopped before publishing, a manifest lost with
// a node that restarted, an old version whose replacing writer stopped
// before dropping it. Nothing reads them, `pocket ls` does not show them,
// and they hold the node's capacity until `pocket rm --all`.
//
// When a job ends, the controller sweeps them (controller/sweep.go) with
// two orders, proved as wire.OpDropJob's are (orders.go): wire.OpVersions
// asks each node of the job's final map which versions its manifests name
// and which versions it holds confirmed chunks of; wire.OpDropVersions
// drops, on one node, the versions no manifest on any node names. Both
// run on the scan lane (their work grows with the job's keys) and only for
// a job that has ended here with none of its puts still committing
// (versionOrderAllowed): a live job's writers may publish a manifest at
// any moment, and an ended job's values are read-only. A leased version is
// never reported nor dropped: its writer has not confirmed it, and the
// chunk lease reclaims it.

// Refusals of the controller's version orders.
var (
	errVersionsLive = &wire.Error{Code: wire.CodeConflict,
		Msg: "the job is live on this node: its chunks are swept only once it has ended"}
	errVersionsBusy = &wire.Error{Code: wire.CodeBusy,
		Msg: "the job's data is being dropped, or its puts are still committing; retry"}
	errVersionsCursor = &wire.Error{Code: wire.CodeMalformed,
		Msg: "a versions page's cursor must be one non-zero version, 8 bytes big endian"}
	errDropVersions = wire.Errorf(wire.CodeMalformed,
		"a drop-versions order carries 1 to %d non-zero versions, 8 bytes each, big endian", wire.MaxDropVersions)
)

// versionOrderAllowed reports whether the controller's version orders may
// run on job here: nil when it is unknown here (it holds nothing),
// revoked or retired, with none of its puts committing.
func (j *jobTable) versionOrderAllowed(job []byte) error {
	e := j.lookup(job)
	if e == nil {
		return nil
	}
	switch e.state.Load() {
	case stateRevoked, stateRetired:
	case stateDropping:
		return errVersionsBusy
	default:
		return errVersionsLive
	}
	if e.inCommit() > 0 {
		return errVersionsBusy
	}
	return nil
}

// versionOrder serves a version order (wire.OpVersions or
// wire.OpDropVersions) on the scan lane.
func (n *Node) versionOrder(h *wire.Header, r *wire.Request) (*wire.Response, error) {
	if len(r.Job) == 0 {
		return nil, errNoJob
	}
	if err := n.jobs.versionOrderAllowed(r.Job); err != nil {
		return nil, err
	}
	if h.Op == wire.OpDropVersions {
		return n.dropVersions(r)
	}
	var after uint64
	if len(r.After) > 0 {
		vs, ok := wire.UnpackVersions(r.After)
		if !ok || len(vs) != 1 {
			return nil, errVersionsCursor
		}
		after = vs[0]
	}
	k := versionSnapKey{job: string(r.Job), manifests: h.Flags&wire.FlagManifest != 0}
	vs := n.verSnaps.get(k, after)
	if vs == nil {
		if k.manifests {
			var err error
			if vs, err = n.namedVersions(r.Job); err != nil {
				return nil, err // a short list, proved, would drop named chunks
			}
		} else {
			vs = n.vers.confirmedVersions(k.job)
		}
		slices.Sort(vs)
		vs = slices.Compact(vs)
		n.verSnaps.put(k, vs)
	}
	vs = vs[sort.Search(len(vs), func(i int) bool { return vs[i] > after }):]
	resp := &wire.Response{Versions: vs}
	if len(vs) > wire.MaxVersionsPage {
		resp.Versions, resp.More = vs[:wire.MaxVersionsPage], true
	}
	if p, ok := n.cfg.Guard.(versionsProver); ok {
		resp.Proof = p.ProveVersions(r.Job, r.Key, resp.Versions, resp.More)
	}
	return resp, nil
}

// Version snapshots. A job's versions are gathered whole, sorted, for the
// first page of a versions order (its tier's keys scanned once) and kept
// for its later pages, so a sweep of M versions scans once, not M/page
// times (a hostile trial: 1.6 million manifests took 82 s to page
// through, each page a full scan on the scan lane). The job has ended, so
// its versions can only go (a delete with its credential) while a
// snapshot is read: a version named that is gone keeps chunks a sweep
// could drop, one held that is gone is dropped as nothing. A snapshot
// lives versionSnapLife; maxVersionSnaps are kept, the oldest going first.
const (
	versionSnapLife = 30 * time.Second
	maxVersionSnaps = 4
)

type versionSnapKey struct {
	job       string
	manifests bool
}

type versionSnap struct {
	vs []uint64
	at time.Time
}

// versionSnaps is a node's version snapshots; the zero value is empty.
type versionSnaps struct {
	mu sync.Mutex
	m  map[versionSnapKey]versionSnap
}

// get returns k's snapshot for a page after `after` (not the first:
// after > 0), if one is kept and live; nil otherwise.
func (s *versionSnaps) get(k versionSnapKey, after uint64) []uint64 {
	if after == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sn, ok := s.m[k]
	if !ok || time.Since(sn.at) > versionSnapLife {
		return nil
	}
	return sn.vs
}

// put keeps vs as k's snapshot, making room by the oldest.
func (s *versionSnaps) put(k versionSnapKey, vs []uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[versionSnapKey]versionSnap{}
	}
	for len(s.m) >= maxVersionSnaps {
		var old versionSnapKey
		first := true
		for key, sn := range s.m {
			if first || sn.at.Before(s.m[old].at) {
				old, first = key, false
			}
		}
		delete(s.m, old)
	}
	s.m[k] = versionSnap{vs: vs, at: time.Now()}
}

// namedVersions lists the versions that the job's manifests on this
// node's tiers name, unsorted, possibly repeated; a tier whose scan fails
// fails it.
func (n *Node) namedVersions(job []byte) ([]uint64, error) {
	var vs []uint64
	for _, t := range n.Tiers() {
		err := scanKeys(t, job, nil, nil, func(_ []byte, info Info) {
			if info.Flags&Manifest != 0 {
				vs = append(vs, info.Version)
			}
		})
		if err != nil {
			return nil, err
		}
	}
	return vs, nil
}

// confirmedVersions lists the versions of which the job has confirmed
// chunks filed here, on any tier, unsorted, possibly repeated.
func (v *versionTable) confirmedVersions(job string) []uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	var vs []uint64
	if !v.holdsLocked(job) {
		return vs
	}
	v.eachOfLocked(job, func(k verKey, e *verEntry) {
		if !e.leased && v.filing[k] == 0 {
			vs = append(vs, k.ver)
		}
	})
	return vs
}

// takeConfirmed removes version k, as take does, only if it is confirmed
// (not leased, no chunk of it being filed): the test and the take are one
// step under mu.
func (v *versionTable) takeConfirmed(k verKey) []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	if e := v.m[k]; e == nil || e.leased || v.filing[k] > 0 {
		return nil
	}
	return v.takeLocked(k)
}

// dropVersions deletes the chunks of the confirmed versions r carries on
// every tier, and answers how many chunks went and the bytes freed (the
// job's usage here before and after).
func (n *Node) dropVersions(r *wire.Request) (*wire.Response, error) {
	vs, ok := wire.UnpackVersions(r.After)
	if !ok || len(vs) == 0 || len(vs) > wire.MaxDropVersions {
		return nil, errDropVersions
	}
	n.vers.run(n)
	before := n.jobUsage(r.Job)
	var count int
	for _, t := range n.Tiers() {
		for _, v := range vs {
			k := verKey{t.Kind(), string(r.Job), v}
			if n.vers.anyMoving() && n.vers.versionMoving(k) {
				continue
			}
			count += deleteKeys(t, r.Job, n.vers.takeConfirmed(k))
		}
	}
	return &wire.Response{Count: uint64(count), Size: max(before-n.jobUsage(r.Job), 0)}, nil
}
