package state

import (
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// journalCommit is the commit record of a journaled batch.
type journalCommit struct {
	Parts int `json:"parts"` // journal/part/000000 .. Parts-1
	Ops   int `json:"ops"`   // the number of journalOps they hold
}

func partKey(i int) string { return fmt.Sprintf("%s%06d", etcdPartDir, i) }

// applyJournaled applies a batch too large for one Txn through the
// journal: parts, commit (from here the batch is durable), copy, delete.
func (s *Etcd) applyJournaled(ops []journalOp) error {
	if err := s.finishJournal(); err != nil { // an earlier batch goes first
		return err
	}
	data, err := json.Marshal(ops)
	if err != nil {
		return err
	}
	parts := split(data, s.opt.MaxTxnBytes/2)
	// Parts left by an Apply that died before its commit are garbage.
	writes := [][]clientv3.Op{{clientv3.OpDelete(s.key(etcdPartDir), clientv3.WithPrefix())}}
	for i, p := range parts {
		writes = append(writes, []clientv3.Op{clientv3.OpPut(s.key(partKey(i)), string(p))})
	}
	for _, w := range writes {
		if err := s.mustApply(w, s.noJournal()); err != nil {
			return err
		}
	}
	if err := s.fail("parts"); err != nil {
		return err
	}
	c, err := json.Marshal(journalCommit{Parts: len(parts), Ops: len(ops)})
	if err != nil {
		return err
	}
	if err := s.mustApply([]clientv3.Op{clientv3.OpPut(s.key(etcdCommitKey), string(c))}, s.noJournal()); err != nil {
		return err
	}
	if err := s.fail("commit"); err != nil {
		return err
	}
	return s.finishJournal()
}

// mustApply is fenced where a failed compare is a bug or a second writer.
func (s *Etcd) mustApply(ops []clientv3.Op, cmps ...clientv3.Cmp) error {
	ok, err := s.fenced(ops, cmps...)
	if err == nil && !ok {
		err = fmt.Errorf("state: %s: the journal changed under its writer (two controllers with one leadership term?)", s.where())
	}
	return err
}

func (s *Etcd) fail(step string) error {
	if s.failAt == nil {
		return nil
	}
	return s.failAt(step)
}

// split cuts data into pieces of at most n bytes.
func split(data []byte, n int) [][]byte {
	var out [][]byte
	for len(data) > n {
		out = append(out, data[:n])
		data = data[n:]
	}
	return append(out, data)
}

// finishJournal copies a committed journal's batch to the records in Txns
// that fit, then deletes the journal. Every Txn requires the same commit
// record, so a journal is never copied over a later batch. Without a
// committed journal it does nothing.
func (s *Etcd) finishJournal() error {
	ops, commitRev, err := s.readJournal()
	if err != nil || commitRev == 0 {
		return err
	}
	same := clientv3.Compare(clientv3.ModRevision(s.key(etcdCommitKey)), "=", commitRev)
	for i, chunk := range s.chunks(ops) {
		if err := s.mustApply(toEtcd(chunk), same); err != nil {
			return err
		}
		if i == 0 {
			if err := s.fail("copy"); err != nil {
				return err
			}
		}
	}
	return s.mustApply([]clientv3.Op{clientv3.OpDelete(s.key(etcdJournalDir), clientv3.WithPrefix())}, same)
}

// readJournal returns the committed journal's writes and the commit
// record's ModRevision (0: no journal is committed).
func (s *Etcd) readJournal() ([]journalOp, int64, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	r, err := s.cli.Get(ctx, s.key(etcdCommitKey))
	if err != nil {
		return nil, 0, fmt.Errorf("state: %s: %w", s.where(), err)
	}
	if len(r.Kvs) == 0 {
		return nil, 0, nil
	}
	commit, rev := r.Kvs[0].Value, r.Kvs[0].ModRevision
	var c journalCommit
	if err := json.Unmarshal(commit, &c); err != nil {
		return nil, 0, fmt.Errorf("state: %s: journal commit: %w", s.where(), err)
	}
	parts := map[string][]byte{}
	for i := 0; i < c.Parts; i++ {
		pr, err := s.cli.Get(ctx, s.key(partKey(i)), clientv3.WithRev(r.Header.Revision))
		if err != nil {
			return nil, 0, fmt.Errorf("state: %s: %w", s.where(), err)
		}
		if len(pr.Kvs) == 1 {
			parts[partKey(i)] = pr.Kvs[0].Value
		}
	}
	ops, err := decodeJournal(s.where(), commit, parts)
	return ops, rev, err
}

// decodeJournal joins a committed journal's parts (keyed by their key
// under the prefix) and decodes its writes.
func decodeJournal(where string, commit []byte, parts map[string][]byte) ([]journalOp, error) {
	var c journalCommit
	if err := json.Unmarshal(commit, &c); err != nil {
		return nil, fmt.Errorf("state: %s: journal commit: %w", where, err)
	}
	var data []byte
	for i := 0; i < c.Parts; i++ {
		p, ok := parts[partKey(i)]
		if !ok {
			return nil, fmt.Errorf("state: %s: journal part %d of %d missing", where, i, c.Parts)
		}
		data = append(data, p...)
	}
	var ops []journalOp
	if err := json.Unmarshal(data, &ops); err != nil {
		return nil, fmt.Errorf("state: %s: journal: %w", where, err)
	}
	if len(ops) != c.Ops {
		return nil, fmt.Errorf("state: %s: journal holds %d writes, its commit says %d", where, len(ops), c.Ops)
	}
	return ops, nil
}

// chunks cuts ops into runs that fit one Txn each.
func (s *Etcd) chunks(ops []journalOp) [][]journalOp {
	var out [][]journalOp
	start, bytes := 0, 0
	for i, op := range ops {
		n := len(op.Key) + len(op.Value)
		if i > start && (i-start == s.opt.MaxTxnOps || bytes+n > s.opt.MaxTxnBytes) {
			out = append(out, ops[start:i])
			start, bytes = i, 0
		}
		bytes += n
	}
	if start < len(ops) {
		out = append(out, ops[start:])
	}
	return out
}
