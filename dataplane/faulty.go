package dataplane

import (
	"fmt"
	"io"
	"sync"
)

// FaultOp names a Tier operation that Faulty can fail.
type FaultOp uint8

// Operations Faulty can fail.
const (
	FaultCreate FaultOp = iota
	FaultCommit         // Pending.Commit
	FaultOpen
	FaultStat
	FaultDelete
	FaultList
	// FaultDrop is DropJob (the hook sees a nil key): an injected failure
	// drops nothing, as a tier whose drop failed; a hook may block to hold
	// the node in its drop.
	FaultDrop
	numFaultOps
)

var faultOpNames = [numFaultOps]string{"create", "commit", "open", "stat", "delete", "list", "drop"}

func (o FaultOp) String() string {
	if o < numFaultOps {
		return faultOpNames[o]
	}
	return fmt.Sprintf("FaultOp(%d)", uint8(o))
}

// FaultHook sees every faultable operation before it runs (for Commit, with
// the job and key given to Create). A non-nil error fails the operation as
// an injected fault would. It runs on the caller's goroutine and may block.
type FaultHook func(op FaultOp, job, key []byte) error

// Faulty wraps a tier and fails chosen operations on demand, so tests can
// prove that a failed put or get gives the client a clear error and loses
// nothing else. With nothing armed it passes every call straight through
// (and passes the tiertest suite).
//
// A failed Create, Open, Stat, Delete or List does not reach the inner tier.
// A failed Commit aborts the inner Pending, so the inner tier stores nothing
// and keeps any older value of the key. Injected errors wrap the error
// given (ErrIO, ErrNoSpace, ...), so errors.Is works on them.
//
// The wrapper allocates per call; it is for tests, not the hot path.
type Faulty struct {
	inner Tier

	mu       sync.Mutex
	fail     [numFaultOps]armed
	short    [numFaultOps]int
	hook     FaultHook
	injected int64
}

type armed struct {
	n   int
	err error
}

var _ Tier = (*Faulty)(nil)

// NewFaulty wraps inner with nothing armed.
func NewFaulty(inner Tier) *Faulty { return &Faulty{inner: inner} }

// Inner returns the wrapped tier.
func (f *Faulty) Inner() Tier { return f.inner }

// FailNext makes the next n calls of op fail with an error wrapping err.
// It replaces what was armed for op; n = 0 disarms it.
func (f *Faulty) FailNext(op FaultOp, n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[op] = armed{n: n, err: err}
}

// ShortNext makes the next n calls of op act as short transfers:
//   - FaultCommit: the device wrote less than the value. Commit aborts the
//     inner put and returns an error wrapping ErrIO and io.ErrShortWrite.
//   - FaultOpen: the device read less than the value. Open succeeds but the
//     Value's segments end one byte before Size; a correct consumer checks
//     and refuses to send it.
//
// Other ops ignore it.
func (f *Faulty) ShortNext(op FaultOp, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.short[op] = n
}

// SetHook installs h (nil removes it).
func (f *Faulty) SetHook(h FaultHook) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hook = h
}

// Reset disarms every fault and removes the hook.
func (f *Faulty) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail, f.short, f.hook = [numFaultOps]armed{}, [numFaultOps]int{}, nil
}

// Injected counts the faults injected so far (failures and short transfers).
func (f *Faulty) Injected() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.injected
}

// check consumes an armed failure of op, then asks the hook.
func (f *Faulty) check(op FaultOp, job, key []byte) error {
	f.mu.Lock()
	a, hook := &f.fail[op], f.hook
	if a.n > 0 {
		a.n--
		f.injected++
		err := a.err
		f.mu.Unlock()
		return fmt.Errorf("faulty tier: injected %s failure: %w", op, err)
	}
	f.mu.Unlock()
	if hook == nil {
		return nil
	}
	if err := hook(op, job, key); err != nil {
		f.mu.Lock()
		f.injected++
		f.mu.Unlock()
		return fmt.Errorf("faulty tier: %s failed by hook: %w", op, err)
	}
	return nil
}

// takeShort consumes an armed short transfer of op.
func (f *Faulty) takeShort(op FaultOp) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.short[op] == 0 {
		return false
	}
	f.short[op]--
	f.injected++
	return true
}

// Kind implements Tier.
func (f *Faulty) Kind() Kind { return f.inner.Kind() }

// Blocking implements Tier.
func (f *Faulty) Blocking() bool { return f.inner.Blocking() }

// setOwners passes the node's owners on to an inner tier that counts
// shares per owner (ownedTier).
func (f *Faulty) setOwners(ownerOf func(job []byte) []byte) {
	if o, ok := f.inner.(ownedTier); ok {
		o.setOwners(ownerOf)
	}
}

// rebind passes a job's new owner on to an inner ownedTier.
func (f *Faulty) rebind(job string) {
	if o, ok := f.inner.(ownedTier); ok {
		o.rebind(job)
	}
}

// ownerUsage passes on to an inner ownerCounted tier, else gives the
// job's own bytes.
func (f *Faulty) ownerUsage(job []byte) int64 {
	if o, ok := f.inner.(ownerCounted); ok {
		return o.ownerUsage(job)
	}
	return f.inner.JobUsage(job)
}

// Create implements Tier.
func (f *Faulty) Create(job, key []byte, size int64, m Meta) (Pending, error) {
	if err := f.check(FaultCreate, job, key); err != nil {
		return nil, err
	}
	p, err := f.inner.Create(job, key, size, m)
	if err != nil {
		return nil, err
	}
	return &faultyPending{f: f, inner: p, job: string(job), key: string(key)}, nil
}

// Open implements Tier.
func (f *Faulty) Open(job, key []byte) (Value, error) {
	if err := f.check(FaultOpen, job, key); err != nil {
		return nil, err
	}
	v, err := f.inner.Open(job, key)
	if err != nil || v.Size() == 0 || !f.takeShort(FaultOpen) {
		return v, err
	}
	return newShortValue(v), nil
}

// Stat implements Tier.
func (f *Faulty) Stat(job, key []byte) (Info, error) {
	if err := f.check(FaultStat, job, key); err != nil {
		return Info{}, err
	}
	return f.inner.Stat(job, key)
}

// Delete implements Tier.
func (f *Faulty) Delete(job, key []byte) (Info, error) {
	if err := f.check(FaultDelete, job, key); err != nil {
		return Info{}, err
	}
	return f.inner.Delete(job, key)
}

// DeleteVersion implements Tier; the hook is FaultDelete's.
func (f *Faulty) DeleteVersion(job, key []byte, v uint64) (Info, error) {
	if err := f.check(FaultDelete, job, key); err != nil {
		return Info{}, err
	}
	return f.inner.DeleteVersion(job, key, v)
}

// List implements Tier. The hook sees the prefix as the key.
func (f *Faulty) List(job, prefix, after []byte, fn func(key []byte, info Info) bool) error {
	if err := f.check(FaultList, job, prefix); err != nil {
		return err
	}
	return f.inner.List(job, prefix, after, fn)
}

// DropJob implements Tier. A failure (FaultDrop) drops nothing.
func (f *Faulty) DropJob(job []byte, keepPersistent bool) Dropped {
	if f.check(FaultDrop, job, nil) != nil {
		return Dropped{}
	}
	return f.inner.DropJob(job, keepPersistent)
}

// Usage implements Tier.
func (f *Faulty) Usage() Usage { return f.inner.Usage() }

// JobUsage implements Tier.
func (f *Faulty) JobUsage(job []byte) int64 { return f.inner.JobUsage(job) }

// Close implements Tier.
func (f *Faulty) Close() error { return f.inner.Close() }

// faultyPending fails Commit on demand, aborting the inner put.
type faultyPending struct {
	f        *Faulty
	inner    Pending
	job, key string
}

func (p *faultyPending) Buffers() [][]byte { return p.inner.Buffers() }

func (p *faultyPending) Commit() (Info, error) {
	if err := p.f.check(FaultCommit, []byte(p.job), []byte(p.key)); err != nil {
		p.inner.Abort()
		return Info{}, err
	}
	if p.f.takeShort(FaultCommit) {
		p.inner.Abort()
		return Info{}, fmt.Errorf("faulty tier: injected short write: %w: %w", ErrIO, io.ErrShortWrite)
	}
	return p.inner.Commit()
}

func (p *faultyPending) Abort() { p.inner.Abort() }

func (p *faultyPending) Key() (job, key []byte) { return p.inner.Key() }

// shortValue is a Value whose segments stop one byte before its Size.
type shortValue struct {
	Value
	segs [][]byte
}

func newShortValue(v Value) *shortValue {
	segs := append([][]byte(nil), v.Segments()...)
	for i := len(segs) - 1; i >= 0; i-- {
		if len(segs[i]) > 0 {
			segs[i] = segs[i][:len(segs[i])-1]
			break
		}
	}
	return &shortValue{Value: v, segs: segs}
}

func (v *shortValue) Segments() [][]byte { return v.segs }
