package blkbpf

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"github.com/pocketstore/pocket/telemetry/metrics"
)

// ErrNotSupported is wrapped by every error that means "this kernel or this
// process cannot run the probe": not root, no BTF, unknown struct layout,
// program refused by the verifier, tracepoint missing.
var ErrNotSupported = errors.New("blkbpf: block latency probe not supported")

var (
	supportOnce sync.Once
	supportErr  error
	kLayout     layout
)

// Supported reports whether the probe can load here, trying it once per
// process (load, no attach) and caching the answer. A nil result means Open
// should succeed; an error wraps ErrNotSupported and says why.
func Supported() error {
	supportOnce.Do(func() { supportErr = probeSupport() })
	return supportErr
}

func probeSupport() error {
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; later ones
	// ignore it, and RemoveMemlock then does nothing. Failure is not final:
	// the load below tells.
	_ = rlimit.RemoveMemlock()
	l, err := kernelLayout()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotSupported, err)
	}
	coll, err := ebpf.NewCollection(collectionSpec(l))
	if err != nil {
		return fmt.Errorf("%w: load: %w", ErrNotSupported, err)
	}
	coll.Close()
	kLayout = l
	return nil
}

// Probe is the attached pair of programs and their maps. Read may be called
// from any goroutine; Close detaches. The zero value is not usable: Open.
type Probe struct {
	coll  *ebpf.Collection
	links []link.Link

	mu    sync.Mutex
	names map[uint32]string // dev -> device name, filled lazily by Read
}

// Open loads the programs and attaches them to block_rq_issue and
// block_rq_complete. The histograms start empty: they count requests
// issued after Open returns.
func Open() (*Probe, error) {
	if err := Supported(); err != nil {
		return nil, err
	}
	coll, err := ebpf.NewCollection(collectionSpec(kLayout))
	if err != nil {
		return nil, fmt.Errorf("%w: load: %w", ErrNotSupported, err)
	}
	p := &Probe{coll: coll, names: make(map[uint32]string)}
	for _, a := range []struct{ prog, tp string }{
		{"blk_complete", "block_rq_complete"}, // first, so no issue goes unmatched for long
		{"blk_issue", "block_rq_issue"},
	} {
		l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: a.tp, Program: coll.Programs[a.prog]})
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("%w: attach %s: %w", ErrNotSupported, a.tp, err)
		}
		p.links = append(p.links, l)
	}
	return p, nil
}

// Close detaches the programs and frees the maps. It is safe to call twice.
func (p *Probe) Close() error {
	var errs []error
	for _, l := range p.links {
		errs = append(errs, l.Close())
	}
	p.links = nil
	if p.coll != nil {
		p.coll.Close()
		p.coll = nil
	}
	return errors.Join(errs...)
}

// histKey mirrors the blk_hist key (see the package doc).
type histKey struct {
	Dev  uint32
	Op   uint16
	Slot uint16
}

// Read returns the cumulative latency readings, one per device and operation
// that has completed at least one request, sorted by device then operation.
// It walks the map while the programs keep counting, so a reading is not
// an atomic cut: counts may be a few requests apart from the sums.
func (p *Probe) Read() ([]Reading, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.coll == nil {
		return nil, errors.New("blkbpf: read of a closed probe")
	}
	byKey := make(map[histKey]*Reading)
	var (
		k     histKey
		percp []uint64
	)
	it := p.coll.Maps[histMap].Iterate()
	for it.Next(&k, &percp) {
		var v uint64
		for _, c := range percp {
			v += c
		}
		hk := histKey{Dev: k.Dev, Op: k.Op}
		h := byKey[hk]
		if h == nil {
			h = p.newHist(k.Dev, Op(k.Op))
			byKey[hk] = h
		}
		switch {
		case k.Slot == SumSlot:
			h.Latency.Sum = v
		case int(k.Slot) < NumSlots:
			h.addSlot(int(k.Slot), v)
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("blkbpf: read histogram: %w", err)
	}
	out := make([]Reading, 0, len(byKey))
	for _, h := range byKey {
		out = append(out, *h)
	}
	slices.SortFunc(out, func(a, b Reading) int {
		return cmp.Or(cmp.Compare(devKey(a.Major, a.Minor), devKey(b.Major, b.Minor)), cmp.Compare(a.Op, b.Op))
	})
	return out, nil
}

func (p *Probe) newHist(dev uint32, op Op) *Reading {
	major, minor := splitDev(dev)
	name, ok := p.names[dev]
	if !ok {
		name = deviceName(major, minor)
		p.names[dev] = name
	}
	return &Reading{Device: name, Major: major, Minor: minor, Op: op, Latency: metrics.NewSnapshot(metrics.Log2Layout)}
}

// deviceName resolves MAJ:MIN through the /sys/dev/block symlink, whose
// last element is the kernel's device name.
func deviceName(major, minor uint32) string {
	s := devString(major, minor)
	target, err := os.Readlink(filepath.Join("/sys/dev/block", s))
	if err != nil {
		return s
	}
	return filepath.Base(target)
}
