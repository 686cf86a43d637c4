package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Load implements Store: every key under the prefix, read in pages of
// EtcdOptions.PageSize at one revision, with a committed journal applied
// over the records.
func (s *Etcd) Load() (*Snapshot, error) {
	for attempt := 0; ; attempt++ {
		snap, err := s.load()
		// The revision of the first page was compacted away while
		// paging: start again at a newer one.
		if errors.Is(err, rpctypes.ErrCompacted) && attempt < 3 {
			continue
		}
		return snap, err
	}
}

// etcdRecords is what Load read, by kind, keyed relative to the prefix's
// directories.
type etcdRecords struct {
	jobs, nodes map[string][]byte
	profs       map[string][]byte // by job name
	meta        []byte
	format      string
	commit      []byte
	parts       map[string][]byte // keyed by their key under the prefix
}

func (s *Etcd) load() (*Snapshot, error) {
	rec := &etcdRecords{jobs: map[string][]byte{}, nodes: map[string][]byte{}, profs: map[string][]byte{}, parts: map[string][]byte{}}
	if err := s.scan(rec.add); err != nil {
		return nil, err
	}
	if rec.format != "" {
		if err := CheckFormat(s.where(), rec.format); err != nil {
			return nil, err
		}
	}
	if rec.commit != nil {
		ops, err := decodeJournal(s.where(), rec.commit, rec.parts)
		if err != nil {
			return nil, err
		}
		rec.apply(s.opt.Prefix, ops)
	}
	return rec.snapshot(s.where())
}

// scan calls add with every key under the prefix (relative to it) and
// its value, in pages read at the revision of the first.
func (s *Etcd) scan(add func(rel string, v []byte)) error {
	pfx := s.opt.Prefix
	end := clientv3.GetPrefixRangeEnd(pfx)
	start, rev := pfx, int64(0)
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(int64(s.opt.PageSize)),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		ctx, cancel := s.ctx()
		r, err := s.cli.Get(ctx, start, opts...)
		cancel()
		if err != nil {
			return fmt.Errorf("state: %s: %w", s.where(), err)
		}
		if rev == 0 {
			rev = r.Header.Revision
		}
		for _, kv := range r.Kvs {
			add(strings.TrimPrefix(string(kv.Key), pfx), kv.Value)
		}
		if !r.More || len(r.Kvs) == 0 {
			return nil
		}
		start = string(r.Kvs[len(r.Kvs)-1].Key) + "\x00"
	}
}

// add files one record by its key; keys of no known kind are ignored.
func (r *etcdRecords) add(rel string, v []byte) {
	switch {
	case rel == etcdFormatKey:
		r.format = string(v)
	case rel == etcdMetaKey:
		r.meta = v
	case rel == etcdCommitKey:
		r.commit = v
	case strings.HasPrefix(rel, etcdPartDir):
		r.parts[rel] = v
	case strings.HasPrefix(rel, etcdJobsDir):
		r.jobs[strings.TrimPrefix(rel, etcdJobsDir)] = v
	case strings.HasPrefix(rel, etcdNodesDir):
		r.nodes[strings.TrimPrefix(rel, etcdNodesDir)] = v
	case strings.HasPrefix(rel, etcdProfsDir):
		r.profs[strings.TrimPrefix(rel, etcdProfsDir)] = v
	}
}

// apply applies a committed journal's writes over the records.
func (r *etcdRecords) apply(pfx string, ops []journalOp) {
	for _, op := range ops {
		rel := strings.TrimPrefix(op.Key, pfx)
		var m map[string][]byte
		switch {
		case rel == etcdMetaKey:
			r.meta = op.Value
			continue
		case strings.HasPrefix(rel, etcdJobsDir):
			m, rel = r.jobs, strings.TrimPrefix(rel, etcdJobsDir)
		case strings.HasPrefix(rel, etcdNodesDir):
			m, rel = r.nodes, strings.TrimPrefix(rel, etcdNodesDir)
		case strings.HasPrefix(rel, etcdProfsDir):
			m, rel = r.profs, strings.TrimPrefix(rel, etcdProfsDir)
		default:
			continue
		}
		if op.Delete {
			delete(m, rel)
		} else {
			m[rel] = op.Value
		}
	}
}

// snapshot decodes the records, jobs by id, nodes by address and
// profiles by job name.
func (r *etcdRecords) snapshot(where string) (*Snapshot, error) {
	jobs, err := sortRaw[Job](where, "job", r.jobs)
	if err != nil {
		return nil, err
	}
	nodes, err := sortRaw[Node](where, "node", r.nodes)
	if err != nil {
		return nil, err
	}
	profs, err := sortRaw[Profile](where, "profile", r.profs)
	if err != nil {
		return nil, err
	}
	// A record that decodes but holds a value out of range (check.go).
	if err := (&Snapshot{Jobs: jobs, Nodes: nodes}).Check(); err != nil {
		return nil, fmt.Errorf("state: controller state under %s is corrupted (invalid record: %w): "+
			"fix the record, or move the prefix's keys aside to start empty", where, err)
	}
	s := &Snapshot{Empty: r.meta == nil && len(jobs) == 0 && len(nodes) == 0 && len(profs) == 0}
	if len(jobs) > 0 {
		s.Jobs = jobs
	}
	if len(nodes) > 0 {
		s.Nodes = nodes
	}
	if len(profs) > 0 {
		s.Profiles = profs
	}
	if r.meta != nil {
		if err := json.Unmarshal(r.meta, &s.Meta); err != nil {
			return nil, fmt.Errorf("state: %s: meta: %w", where, err)
		}
	}
	return s, nil
}

// EtcdMeta reads the Meta record of the store under opt.Prefix without
// opening it (no format stamp, no fence): what a standby checks before it
// campaigns. ok is false when there is none (a new store), or when it is
// held in a committed journal only (Load applies it).
func EtcdMeta(ctx context.Context, cli *clientv3.Client, opt EtcdOptions) (m Meta, ok bool, err error) {
	opt.Fence = noFence{} // only read
	if err := opt.defaults(); err != nil {
		return Meta{}, false, err
	}
	r, err := cli.Get(ctx, opt.Prefix+etcdMetaKey)
	if err != nil {
		return Meta{}, false, fmt.Errorf("state: etcd prefix %s: %w", opt.Prefix, err)
	}
	if len(r.Kvs) == 0 {
		return Meta{}, false, nil
	}
	if err := json.Unmarshal(r.Kvs[0].Value, &m); err != nil {
		return Meta{}, false, fmt.Errorf("state: etcd prefix %s: meta record: %w", opt.Prefix, err)
	}
	return m, true, nil
}

// noFence is the Fence of a read that writes nothing (EtcdMeta).
type noFence struct{}

func (noFence) Key() string { return "" }
func (noFence) Rev() int64  { return 0 }
