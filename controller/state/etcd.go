package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultEtcdPrefix is where an etcd Store keeps its records.
const DefaultEtcdPrefix = "/pocket/state/"

// Key layout of an etcd Store under its prefix P (format version 1):
//
//	P format               the decimal FormatVersion
//	P meta                 the JSON Meta
//	P jobs/<job id>        a JSON Job
//	P nodes/<node addr>    a JSON Node
//	P profiles/<job name>  a JSON Profile
//	P journal/commit       a JSON journalCommit: a large batch is committed
//	P journal/part/<%06d>  the parts of that batch's JSON journalOps
//
// A batch that fits one etcd Txn (EtcdOptions.MaxTxnOps operations,
// MaxTxnBytes bytes) is that Txn. A larger one goes through the journal:
// its parts are written (invisible until committed), then the commit
// record, which makes the batch durable and visible: Load applies a
// committed journal over the records. Then the batch is copied to the
// records in Txns that fit, and the journal deleted. An Apply that finds
// a committed journal (a controller died while copying) finishes it
// first, so batches stay in order.
const (
	etcdFormatKey  = "format"
	etcdMetaKey    = "meta"
	etcdJobsDir    = "jobs/"
	etcdNodesDir   = "nodes/"
	etcdProfsDir   = "profiles/"
	etcdJournalDir = "journal/"
	etcdCommitKey  = etcdJournalDir + "commit"
	etcdPartDir    = etcdJournalDir + "part/"
)

// Fence is the leadership an etcd Store's writes are conditioned on: the
// leader key and its creation revision (controller/leader's Term, or an
// etcd concurrency.Election after Campaign). Every Apply's Txn compares
// CreateRevision(Key()) with Rev(), so it succeeds only while that key,
// created at that revision, exists.
type Fence interface {
	Key() string
	Rev() int64
}

// EtcdOptions configures an etcd Store. Zero fields take defaults.
type EtcdOptions struct {
	// Prefix is where the records live (DefaultEtcdPrefix); a "/" is
	// appended when missing. Controllers of one cluster share it.
	Prefix string
	// Fence is the controller's leadership term; required.
	Fence Fence
	// Timeout bounds each etcd request (5 s). An Apply that times out
	// may or may not have been applied; it returns an error.
	Timeout time.Duration
	// MaxTxnOps is the most operations one Txn may hold: etcd's
	// --max-txn-ops (128 by default). Larger batches use the journal.
	MaxTxnOps int
	// MaxTxnBytes bounds the keys and values of one Txn (1 MiB, below
	// etcd's default --max-request-bytes of 1.5 MiB).
	MaxTxnBytes int
	// PageSize is how many keys Load reads per request (500).
	PageSize int
}

func (o *EtcdOptions) defaults() error {
	if o.Fence == nil {
		return errors.New("state: an etcd store needs the controller's leadership term (EtcdOptions.Fence)")
	}
	if o.Prefix == "" {
		o.Prefix = DefaultEtcdPrefix
	}
	if !strings.HasSuffix(o.Prefix, "/") {
		o.Prefix += "/"
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.MaxTxnOps <= 0 {
		o.MaxTxnOps = 128
	}
	if o.MaxTxnBytes <= 0 {
		o.MaxTxnBytes = 1 << 20
	}
	if o.PageSize <= 0 {
		o.PageSize = 500
	}
	if o.MaxTxnOps < 2 || o.MaxTxnBytes < 1024 {
		return fmt.Errorf("state: etcd txn limits %d ops, %d bytes: too small (at least 2 ops, 1 KiB)", o.MaxTxnOps, o.MaxTxnBytes)
	}
	return nil
}

// Etcd is a Store in etcd: several controllers, one elected (see
// controller/leader), fail over on the same records. Every Apply is
// fenced by the leadership term it was opened with and fails with
// ErrNotLeader once that term has ended. It does not own the client.
type Etcd struct {
	cli *clientv3.Client
	opt EtcdOptions

	mu     sync.Mutex // serializes Apply
	closed bool
	// failAt, set by tests, is called at each step of a journaled
	// Apply ("parts", "commit", "copy"); an error stops the Apply
	// there, as a crash would.
	failAt func(step string) error
}

// OpenEtcd opens the store under opt.Prefix, stamping the format version
// on a new one. It fails with a FormatError when the store was written by
// a newer format version.
func OpenEtcd(cli *clientv3.Client, opt EtcdOptions) (*Etcd, error) {
	if cli == nil {
		return nil, errors.New("state: no etcd client")
	}
	if err := opt.defaults(); err != nil {
		return nil, err
	}
	s := &Etcd{cli: cli, opt: opt}
	ctx, cancel := s.ctx()
	defer cancel()
	k := s.key(etcdFormatKey)
	r, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, strconv.Itoa(FormatVersion))).Else(clientv3.OpGet(k)).Commit()
	if err != nil {
		return nil, fmt.Errorf("state: %s: %w", s.where(), err)
	}
	if !r.Succeeded {
		if err := CheckFormat(s.where(), string(r.Responses[0].GetResponseRange().Kvs[0].Value)); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *Etcd) key(rel string) string { return s.opt.Prefix + rel }

// where names the store in errors.
func (s *Etcd) where() string { return "etcd prefix " + s.opt.Prefix }

func (s *Etcd) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.opt.Timeout)
}

// Close implements Store; later Applies fail. The client stays open.
func (s *Etcd) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

// Apply implements Store: one fenced etcd Txn, or the journal for a batch
// too large for one (see the key layout).
func (s *Etcd) Apply(b *Batch) error {
	ops, err := s.batchOps(b)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("state: %s: store closed", s.where())
	}
	if s.opt.Fence.Key() == "" {
		return fmt.Errorf("%w (%s: not elected)", ErrNotLeader, s.where())
	}
	if s.fits(ops) {
		return s.applySmall(ops)
	}
	return s.applyJournaled(ops)
}

// journalOp is one write of a batch: a put of Value, or a delete.
type journalOp struct {
	Key    string          `json:"k"`
	Value  json.RawMessage `json:"v,omitempty"`
	Delete bool            `json:"d,omitempty"`
}

// batchOps turns b into writes on full keys: deletes of keys the batch
// does not also put (a batch that deletes and puts a key keeps the put),
// then puts. It refuses a record too large for one Txn.
func (s *Etcd) batchOps(b *Batch) ([]journalOp, error) {
	enc, err := encodeBatch(b)
	if err != nil {
		return nil, err
	}
	var ops []journalOp
	seen := map[string]bool{}
	del := func(k string) {
		if !seen[k] {
			seen[k] = true
			ops = append(ops, journalOp{Key: k, Delete: true})
		}
	}
	for _, id := range b.DeleteJobs {
		if _, put := enc.jobs[id]; !put {
			del(s.key(etcdJobsDir + id))
		}
	}
	for _, a := range b.DeleteNodes {
		if _, put := enc.nodes[a]; !put {
			del(s.key(etcdNodesDir + a))
		}
	}
	for _, name := range b.DeleteProfiles {
		if _, put := enc.profs[name]; !put {
			del(s.key(etcdProfsDir + name))
		}
	}
	for _, id := range sortedKeys(enc.jobs) {
		ops = append(ops, journalOp{Key: s.key(etcdJobsDir + id), Value: enc.jobs[id]})
	}
	for _, a := range sortedKeys(enc.nodes) {
		ops = append(ops, journalOp{Key: s.key(etcdNodesDir + a), Value: enc.nodes[a]})
	}
	for _, name := range sortedKeys(enc.profs) {
		ops = append(ops, journalOp{Key: s.key(etcdProfsDir + name), Value: enc.profs[name]})
	}
	if enc.meta != nil {
		ops = append(ops, journalOp{Key: s.key(etcdMetaKey), Value: enc.meta})
	}
	for _, op := range ops {
		if n := len(op.Key) + len(op.Value); n > s.opt.MaxTxnBytes-256 {
			return nil, fmt.Errorf("state: %s: record %s is %d bytes, over the %d bytes one etcd request may carry", s.where(), op.Key, n, s.opt.MaxTxnBytes)
		}
	}
	return ops, nil
}

// fits reports whether ops fit one Txn (besides the fence).
func (s *Etcd) fits(ops []journalOp) bool {
	return len(ops) <= s.opt.MaxTxnOps && opsBytes(ops) <= s.opt.MaxTxnBytes
}

func opsBytes(ops []journalOp) int {
	n := 0
	for _, op := range ops {
		n += len(op.Key) + len(op.Value)
	}
	return n
}

func toEtcd(ops []journalOp) []clientv3.Op {
	out := make([]clientv3.Op, len(ops))
	for i, op := range ops {
		if op.Delete {
			out[i] = clientv3.OpDelete(op.Key)
		} else {
			out[i] = clientv3.OpPut(op.Key, string(op.Value))
		}
	}
	return out
}

// applySmall writes ops in one Txn, fenced and conditioned on there being
// no committed journal; it finishes a journal it finds and tries again.
func (s *Etcd) applySmall(ops []journalOp) error {
	for attempt := 0; ; attempt++ {
		ok, err := s.fenced(toEtcd(ops), s.noJournal())
		if err != nil || ok {
			return err
		}
		if attempt > 0 {
			return fmt.Errorf("state: %s: a journal appeared twice while applying", s.where())
		}
		if err := s.finishJournal(); err != nil {
			return err
		}
	}
}

// noJournal is the compare "no journal is committed".
func (s *Etcd) noJournal() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(s.key(etcdCommitKey)), "=", 0)
}

// fenced commits ops in a Txn that also requires this controller's
// leader key and every cmp. It returns ErrNotLeader when the leader key is
// gone or another's, false when a cmp failed, true when applied.
func (s *Etcd) fenced(ops []clientv3.Op, cmps ...clientv3.Cmp) (bool, error) {
	fk, frev := s.opt.Fence.Key(), s.opt.Fence.Rev()
	all := append([]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(fk), "=", frev)}, cmps...)
	ctx, cancel := s.ctx()
	defer cancel()
	r, err := s.cli.Txn(ctx).If(all...).Then(ops...).Else(clientv3.OpGet(fk)).Commit()
	if err != nil {
		return false, fmt.Errorf("state: %s: %w", s.where(), err)
	}
	if r.Succeeded {
		return true, nil
	}
	kvs := r.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 || kvs[0].CreateRevision != frev {
		return false, fmt.Errorf("%w (%s: leader key %s of revision %d is gone)", ErrNotLeader, s.where(), fk, frev)
	}
	return false, nil
}

// Compile-time check.
var _ Store = (*Etcd)(nil)

// sortRaw decodes the records of m in key order into out's elements.
func sortRaw[T any](where, kind string, m map[string][]byte) ([]T, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]T, 0, len(keys))
	for _, k := range keys {
		var v T
		if err := json.Unmarshal(m[k], &v); err != nil {
			return nil, fmt.Errorf("state: %s: %s %q: %w", where, kind, k, err)
		}
		out = append(out, v)
	}
	return out, nil
}
