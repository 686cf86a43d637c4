package state

import (
	"encoding/json"
	"maps"
	"sort"
	"sync"
)

// Memory is a Store in memory, for tests: it keeps each record encoded,
// as a durable store would, so a Load returns copies that share nothing
// with what was applied. A controller closed without cleanup and a new one
// given the same Memory stand for a restart on the same directory.
type Memory struct {
	mu     sync.Mutex
	jobs   map[string][]byte
	nodes  map[string][]byte
	profs  map[string][]byte
	meta   Meta
	used   bool
	failOn error // returned by Apply when set (SetFail)
}

// NewMemory returns an empty store.
func NewMemory() *Memory {
	return &Memory{jobs: map[string][]byte{}, nodes: map[string][]byte{}, profs: map[string][]byte{}}
}

// SetFail makes every later Apply fail with err (nil: succeed again),
// for tests of a store that stops working.
func (m *Memory) SetFail(err error) {
	m.mu.Lock()
	m.failOn = err
	m.mu.Unlock()
}

// Load implements Store.
func (m *Memory) Load() (*Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := &Snapshot{Meta: m.meta, Empty: !m.used}
	for _, k := range sortedKeys(m.jobs) {
		var j Job
		if err := json.Unmarshal(m.jobs[k], &j); err != nil {
			return nil, err
		}
		s.Jobs = append(s.Jobs, j)
	}
	for _, k := range sortedKeys(m.nodes) {
		var n Node
		if err := json.Unmarshal(m.nodes[k], &n); err != nil {
			return nil, err
		}
		s.Nodes = append(s.Nodes, n)
	}
	for _, k := range sortedKeys(m.profs) {
		var p Profile
		if err := json.Unmarshal(m.profs[k], &p); err != nil {
			return nil, err
		}
		s.Profiles = append(s.Profiles, p)
	}
	return s, nil
}

// Apply implements Store.
func (m *Memory) Apply(b *Batch) error {
	enc, err := encodeBatch(b)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failOn != nil {
		return m.failOn
	}
	for _, id := range b.DeleteJobs {
		delete(m.jobs, id)
	}
	for _, a := range b.DeleteNodes {
		delete(m.nodes, a)
	}
	for k, v := range enc.jobs {
		m.jobs[k] = v
	}
	for k, v := range enc.nodes {
		m.nodes[k] = v
	}
	for _, name := range b.DeleteProfiles {
		delete(m.profs, name)
	}
	for k, v := range enc.profs {
		m.profs[k] = v
	}
	if b.Meta != nil {
		m.meta = *b.Meta
	}
	m.used = true
	return nil
}

// Copy returns a store holding what m holds now, sharing nothing with it:
// a copy of a state directory taken while the controller ran, for tests
// of a controller restored from an older copy.
func (m *Memory) Copy() *Memory {
	m.mu.Lock()
	defer m.mu.Unlock()
	return &Memory{jobs: maps.Clone(m.jobs), nodes: maps.Clone(m.nodes), profs: maps.Clone(m.profs), meta: m.meta, used: m.used}
}

// Close implements Store; a Memory keeps its records for the next user.
func (m *Memory) Close() error { return nil }

// encoded is a batch's records, encoded.
type encoded struct {
	jobs, nodes, profs map[string][]byte
	meta               []byte
}

// encodeBatch encodes every record of b. Deletes come before puts when
// applied, so a batch that deletes and puts one key keeps the put.
func encodeBatch(b *Batch) (*encoded, error) {
	e := &encoded{jobs: make(map[string][]byte, len(b.PutJobs)), nodes: make(map[string][]byte, len(b.PutNodes)),
		profs: make(map[string][]byte, len(b.PutProfiles))}
	for i := range b.PutJobs {
		v, err := json.Marshal(&b.PutJobs[i])
		if err != nil {
			return nil, err
		}
		e.jobs[b.PutJobs[i].ID] = v
	}
	for i := range b.PutNodes {
		v, err := json.Marshal(&b.PutNodes[i])
		if err != nil {
			return nil, err
		}
		e.nodes[b.PutNodes[i].Addr] = v
	}
	for i := range b.PutProfiles {
		p := &b.PutProfiles[i]
		if err := p.check(); err != nil {
			return nil, err
		}
		v, err := json.Marshal(p)
		if err != nil {
			return nil, err
		}
		e.profs[p.Name] = v
	}
	if b.Meta != nil {
		v, err := json.Marshal(b.Meta)
		if err != nil {
			return nil, err
		}
		e.meta = v
	}
	return e, nil
}

func sortedKeys(m map[string][]byte) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
