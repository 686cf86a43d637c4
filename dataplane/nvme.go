package dataplane

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/pocketstore/pocket/dataplane/slab"
	"github.com/pocketstore/pocket/nvme"
	"github.com/pocketstore/pocket/wire"
)

// The NVMe tier keeps its index in DRAM and values in extents of an
// nvme.Device.
//
// Index: one map per job (key -> *nvmeVersion) under one RWMutex for the
// whole tier. Every operation that reaches the device already costs tens of
// microseconds, so the lock is never the bottleneck, and it is never held
// across a transfer.
//
// Space: an nvme.Allocator over the device in blocks of max(alignment, 4 KiB).
// Create reserves a value's extents at once (so a full tier answers
// ErrNoSpace before any payload is received); a value whose size no single
// free extent holds is scattered over as many pieces as it needs (at most
// one a block; MaxExtents caps them when set), each beyond the first
// counted in the key index (extCost). Usage.Used
// counts allocated blocks, reservations and retired versions still being
// read included.
//
// Versions: an overwritten or deleted version is unpublished at once; its
// extents are freed when the last Open still reading it finishes (readers
// counts open values and streams, taken under mu's read lock), as the Tier
// contract asks. An Open reads the value from the device into aligned
// buffers of its own.
//
// Buffers: staging buffers (Pending.Buffers) and read buffers
// (Value.Segments) are aligned chunks of at most ChunkSize bytes from the
// buffer source (the node's slab arena when given), each padded to the
// alignment: a GET goes device -> arena chunk -> socket with no copy. The
// padding past a value's end is zeroed before it is written. Staging
// buffers are valid until Commit or Abort returns, segments until Release.
//
// Lock order: mu, then the allocator (owned by mu). The buffer source and
// the device take their own locks and are called with mu released.

// NVMeOptions tune NewNVMe. The zero value is the default.
type NVMeOptions struct {
	// Buffers supplies aligned memory. Default: the device's own source.
	// Use ArenaBuffers(dram.Arena()) to share the node's DRAM arena.
	Buffers nvme.BufferSource
	// ChunkSize is the largest single buffer (and segment), a multiple of
	// the device alignment; default 1 MiB.
	ChunkSize int
	// Capacity limits the bytes used on the device (default its size).
	Capacity int64
	// MaxExtents bounds the pieces of one scattered value (default: one
	// a block of it, each beyond the first counted in the key index:
	// extCost).
	MaxExtents int
	// MaxJobLen and MaxKeyLen bound job ids and keys (defaults: the wire
	// protocol's limits).
	MaxJobLen, MaxKeyLen int
	// MaxReadStagingPerJob bounds the staging memory one owner's open
	// values and streamed gets (its jobs' together, as the node names
	// owners: owner.go; the name is from when it was per job) may hold
	// while another of their reads holds some (readShare). 0: a quarter of the buffer source's regions when
	// it reports them, else none; negative: none.
	MaxReadStagingPerJob int64
	// Logger takes the tier's warnings of device errors (nil:
	// slog.Default() when one is logged).
	Logger *slog.Logger
	// MaxIndexBytes bounds the memory of the tier's key index, counted as
	// each key's length plus nvmeEntryCost (DefaultNVMeIndex when 0): a put
	// of a new key past it answers ErrNoSpace.
	MaxIndexBytes int64
}

// DefaultNVMeIndex is the default bound on the NVMe tier's key index.
const DefaultNVMeIndex = 1 << 30

// nvmeEntryCost is what the index holds per key beyond the key's bytes:
// the map entry, the version record and its extent, with the map's slack.
// A hostile trial measured about 1.4 KB of node memory per key of 980
// bytes (118,232 keys of 1-byte values took 164 MB), 420 bytes beyond the
// key; 256 counts the entries of a map grown to size.
const nvmeEntryCost = 256

// ErrIndexFull: the NVMe tier's key index is at its bound
// (NVMeOptions.MaxIndexBytes). It is ErrNoSpace.
var ErrIndexFull = fmt.Errorf("%w: the NVMe tier's key index is full (--nvme-index)", ErrNoSpace)

// NVMe is the flash tier. Commit and Open wait for the device, so the node
// calls them from its bounded worker pool (Blocking reports true).
type NVMe struct {
	dev            *nvme.Device
	bufs           nvme.BufferSource
	chunk          int
	align          int
	maxExt         int
	maxJob, maxKey int

	mu       sync.RWMutex
	alloc    *nvme.Allocator
	jobs     map[string]*nvmeJob
	shares   map[string]*nvmeShare // by owner key (owner.go), while a job is bound to one
	values   int64
	index    int64 // the key index's bytes (indexCost of each key)
	over     int64 // the owners' index costs beyond their shares, each at most its slack (pooled)
	maxIndex int64
	closed   bool
	// ownerOf names a job's owner (Node.ownerOf; nil: none, every job its
	// own owner). Set before the tier serves (setOwners).
	ownerOf func(job []byte) []byte

	// readShare is the most staging memory one owner's reads (its jobs'
	// together, nvmeShare) may hold while another read of theirs holds some (NVMeOptions.MaxReadStagingPerJob;
	// 0: no bound). The staging buffers are the tier's, every job's: a
	// value read whole stays in them until its reply has been sent, and a
	// streamed get holds up to a window of chunks. Unbounded, one job's
	// clients that read nothing held them all: 70 connections, each with
	// one get of a 7 MiB value, took a 64 MiB pool, and every other job's
	// NVMe puts and gets failed "tier full" until the write timeout
	// reset them (10 connections, with two gets each; a hostile trial).
	readShare int64
	// staging is the buffer source's bytes when it reports them (its
	// regions), else 0: a value needs that much of it at once.
	staging int64

	flushClaimed atomic.Bool // a Flush is arranged (ClaimFlush)

	// Device errors (ioErr): counted by direction, the last one's time
	// (monoNow), and logged at most once a second (logDeviceError).
	log       *slog.Logger
	devErrs   [2]atomic.Uint64 // reads, writes
	lastErrAt atomic.Int64     // monoNow of the last; 0: none
	loggedAt  atomic.Int64     // monoNow of the last log line
	logged    atomic.Uint64    // errors counted by the log lines so far
}

var _ Tier = (*NVMe)(nil)

// nvmeJob is one job's keys and what they count; mu guards all of it.
type nvmeJob struct {
	keys map[string]*nvmeVersion
	peak int // the most keys the map held since it was made (forgetEmpty)
	// walks counts the walks over keys that let mu go between batches
	// (scanKeys, DropJob): keys is not copied while one runs, so that a
	// walk's map stays the job's.
	walks atomic.Int32
	used  int64 // allocated bytes of committed values
	index int64 // what its keys cost the index (indexCost)
	share *nvmeShare
}

// nvmeShare is what the jobs of one owner (key: its owner key, owner.go)
// count against the tier's per-owner bounds: their keys' index cost and
// their values' allocated bytes, summed over its jobs (the index share,
// nvmeIndexShare), and the staging memory their reads hold (readShare).
// Counted per job, one tenant's jobs each had a share: a re-check filled
// a 1 MiB index with two jobs of one client (before 2026-12-06). index,
// used and jobs are guarded by mu.
type nvmeShare struct {
	key   string
	jobs  int // jobs bound to it; it is forgotten with the last
	used  int64
	index int64
	// staged is the staging memory its jobs' open values and streams
	// hold (chargeRead); read and written without mu.
	staged atomic.Int64
}

// beyond is what keys costing the index index bytes, for values of used
// allocated bytes, cost it beyond their owner's share (share).
func (t *NVMe) beyond(index, used int64) int64 { return max(0, index-t.share(used)) }

// share is an owner's share of the index for values of used allocated bytes:
// 1/nvmeIndexShare of them, at most half the index (nvmeIndexShare).
func (t *NVMe) share(used int64) int64 { return min(used/nvmeIndexShare, t.maxIndex/2) }

// slack is what one owner's keys may cost the index beyond its share.
func (t *NVMe) slack() int64 { return t.maxIndex / 16 }

// pooled is what s takes of the quarter of the index all owners' costs
// beyond their shares share (NVMe.over): its cost beyond its share, at
// most its slack.
func (t *NVMe) pooled(s *nvmeShare) int64 { return min(t.beyond(s.index, s.used), t.slack()) }

// An owner's keys (its jobs' together: nvmeShare) may cost the NVMe
// tier's index at most their share, a 1/nvmeIndexShare of their values'
// allocated bytes but at most half the index, plus a slack of a sixteenth
// of it; all owners' costs beyond their shares (NVMe.over) may take at
// most a quarter of it. The share stays derived from values' bytes, now
// the owner's jobs' together: a job's values give its owner's keys the
// room they would give one job holding them all, and registering more
// jobs gives an owner no more of the cap, the slack or the quarter.
// Below, "a job" is such an owner; before 2026-12-06 it was each job, and
// a re-check filled a 1 MiB index with two jobs of one client. So keys whose
// values are small next to their entry (a one-block value of 4 KiB has a
// share of 64 bytes, its entry costs 256 plus the key) cannot fill the
// index that every other job's new keys need; a value of 16 KiB plus 64
// bytes per byte of its key is within its share (22.25 KiB for a key of
// 100 bytes). Before, the bound was the node's alone: a hostile trial's
// tenant filled a 64 KiB index with 250 one-byte persisted keys, and
// another tenant's first key was refused for as long as they were kept,
// after their job ended too.
//
// The share is capped at half the index, and a job counts in the shared
// quarter (NVMe.over) for at most its slack. Before, a share grew with its
// values' bytes without bound: a second hostile trial's job with 12 values
// of 8 MiB had a share above a whole 1 MiB index, filled it with 3,543
// one-byte keys, and a new job's 20 one-byte puts were refused 20/20 (the
// index full). Once that job deleted its large values its keys were all
// beyond its smaller share, and counted in the shared quarter they took
// more than all of it: the new job, which held no keys, was still refused
// ("... beyond their jobs' shares ... (a quarter of it)"). Now one job
// holds at most half the index plus its slack, and a job whose share
// shrank under keys it already has is refused new keys itself (they are
// beyond its share and slack) without taking the quarter other jobs'
// slack is in.
const nvmeIndexShare = 64

// ErrJobIndexFull: the keys of the job's owner (its jobs together) cost
// the NVMe tier's index their share and its slack (nvmeIndexShare). It
// wraps ErrNoSpace.
var ErrJobIndexFull = fmt.Errorf("%w: the keys of the job's owner (its jobs together) on this node's NVMe tier are at its share of the key index "+
	"(a sixteenth of it, plus 1/64 of their values' bytes up to half of it): store fewer, larger values", ErrNoSpace)

// ErrIndexSlackFull: the owners' keys beyond their shares take a quarter
// of the NVMe tier's index. It wraps ErrNoSpace.
var ErrIndexSlackFull = fmt.Errorf("%w: the NVMe tier's key index holds as many keys beyond their owners' shares as it takes "+
	"(a quarter of it): store fewer, larger values", ErrNoSpace)

type nvmeVersion struct {
	size   int64
	flags  PutFlags
	ver    uint64 // Info.Version
	object int64  // Info.ObjectSize
	ext    []nvme.Extent
	alloc  int64 // bytes of ext
	// readers counts the values and streams open on this version: taken
	// under mu's read lock (acquire), so never while retire runs.
	readers atomic.Int32
	// retired: unpublished (set under mu); its extents are freed, under
	// mu, by whichever of retire and the last doneReading sees readers 0
	// there.
	retired atomic.Bool
}

// NewNVMe builds a tier on dev. The tier does not own the device: close the
// tier first, then the device (and the buffer source after every value
// still open has been released).
func NewNVMe(dev *nvme.Device, opts NVMeOptions) (*NVMe, error) {
	align := dev.Align()
	block := int64(max(align, 4096))
	capacity := dev.Size()
	if opts.Capacity > 0 && opts.Capacity < capacity {
		capacity = opts.Capacity
	}
	a, err := nvme.NewAllocator(capacity, block)
	if err != nil {
		return nil, fmt.Errorf("nvme tier: %w", err)
	}
	t := &NVMe{
		dev:      dev,
		bufs:     opts.Buffers,
		chunk:    cmpOr(opts.ChunkSize, 1<<20),
		align:    max(align, dev.MemAlign()),
		maxExt:   opts.MaxExtents,
		maxJob:   cmpOr(opts.MaxJobLen, wire.DefaultMaxJobLen),
		maxKey:   cmpOr(opts.MaxKeyLen, wire.DefaultMaxKeyLen),
		alloc:    a,
		jobs:     make(map[string]*nvmeJob),
		shares:   make(map[string]*nvmeShare),
		maxIndex: cmpOr(opts.MaxIndexBytes, DefaultNVMeIndex),
		log:      opts.Logger,
	}
	t.loggedAt.Store(monoNow() - int64(time.Hour)) // the first error logs at once
	if t.bufs == nil {
		t.bufs = dev.Buffers()
	}
	if r, ok := t.bufs.(nvme.RegionSource); ok {
		for _, b := range r.Regions() {
			t.staging += int64(len(b))
		}
	}
	switch {
	case opts.MaxReadStagingPerJob > 0:
		t.readShare = opts.MaxReadStagingPerJob
	case opts.MaxReadStagingPerJob == 0:
		t.readShare = t.staging / 4
	}
	if t.chunk%align != 0 {
		return nil, fmt.Errorf("nvme tier: chunk size %d not a multiple of the device alignment %d", t.chunk, align)
	}
	return t, nil
}

// ArenaBuffers adapts the node's slab arena to nvme.BufferSource; its
// classes of 4 KiB and up are 4096-aligned, which suits O_DIRECT. A Free the
// arena refuses is a bug in the caller and panics.
func ArenaBuffers(a *slab.Arena) nvme.BufferSource { return arenaSource{a} }

type arenaSource struct{ a *slab.Arena }

func (s arenaSource) AllocAligned(n, align int) ([]byte, error) {
	b, err := s.a.AllocAligned(n, align)
	if errors.Is(err, slab.ErrNoSpace) {
		return nil, fmt.Errorf("%w: %w", nvme.ErrNoSpace, err)
	}
	return b, err
}

func (s arenaSource) Free(b []byte) {
	if err := s.a.Free(b); err != nil {
		panic(fmt.Sprintf("nvme tier: arena refused a buffer: %v", err))
	}
}

// Kind implements Tier.
func (t *NVMe) Kind() Kind { return KindNVMe }

// Blocking implements Tier: Commit and Open wait for the device.
func (t *NVMe) Blocking() bool { return true }

func (t *NVMe) checkKey(job, key []byte) error {
	if len(job) == 0 || len(job) > t.maxJob || len(key) == 0 || len(key) > t.maxKey {
		return ErrBadKey
	}
	return nil
}

// DeviceFailingFor is how long after its last device error a tier is
// reported failing in the node's heartbeats (wire.MetricDeviceFailingPrefix),
// so that the controller places no new job there.
const DeviceFailingFor = 5 * time.Minute

// DeviceErrors are a tier's device I/O errors since it opened.
type DeviceErrors struct {
	Reads, Writes uint64
	Last          time.Time // the last one's time; zero: none
}

// DeviceErrors reports the tier's device I/O errors (reads and writes the
// device failed: EIO, a read-only or shrunk device, short transfers).
// The node exports them (pocket_node_tier_device_errors_total) and its
// agent reports them in its heartbeats, so that the controller places no
// new job on a tier whose device is failing (wire.MetricDeviceFailingPrefix).
func (t *NVMe) DeviceErrors() DeviceErrors {
	d := DeviceErrors{Reads: t.devErrs[0].Load(), Writes: t.devErrs[1].Load()}
	if at := t.lastErrAt.Load(); at != 0 {
		d.Last = monoBase.Add(time.Duration(at))
	}
	return d
}

// deviceError counts a device error and logs, at most once a second, how
// many came since the last such line. Before, a failing device went
// unnoticed: a hostile trial's read-only device (blockdev --setro: every
// put failed "operation not permitted") and shrunk loop device (741 of
// 1,696 gets failed EIO) left no line in the node's log and no figure,
// and the controller went on placing new jobs there.
func (t *NVMe) deviceError(write bool, err error) {
	i := 0
	if write {
		i = 1
	}
	t.devErrs[i].Add(1)
	now := monoNow()
	t.lastErrAt.Store(max(now, 1))
	last := t.loggedAt.Load()
	if now-last < int64(time.Second) || !t.loggedAt.CompareAndSwap(last, now) {
		return
	}
	reads, writes := t.devErrs[0].Load(), t.devErrs[1].Load()
	n := reads + writes - t.logged.Swap(reads+writes)
	log := t.log
	if log == nil {
		log = slog.Default()
	}
	log.Warn("nvme tier: device I/O errors: the device may be failing; a controller places no new job on this tier until "+
		DeviceFailingFor.String()+" pass without one",
		"path", t.dev.Path(), "errors", n, "reads", reads, "writes", writes, "last", err)
}

// errOverStaging: a put of a value larger than half the tier's staging
// memory, which holds a value whole while it is written:
// wire.CodeTooLarge, which the SDKs return at once. Before, it was refused
// as ErrNoSpace, "tier full", on a tier mostly empty (a hostile trial).
//
// Half, not all of it (maxRecord): an owner's only unfinished put is
// never refused (unfinished.go), so one value as large as the staging
// memory took all of it while its payload came. A hostile re-check held a
// node's 16 MiB so with one 15 MiB put paced just over --min-put-rate, or
// with puts cut for their pace and sent again at once, and every other
// tenant's NVMe puts of 1 MiB failed busy after the SDKs' 10 s.
func errOverStaging(staging int64) error {
	return &wire.Error{Code: wire.CodeTooLarge, Msg: fmt.Sprintf(
		"value larger than half the NVMe tier's staging memory of %d bytes (--nvme-staging), which holds a value whole while it is written "+
			"(one value may take at most half, so that one writer cannot take it all from the others)", staging)}
}

// maxRecord is the largest value the tier stores as one record (a value
// or an SDK's chunk): half its staging memory, aligned down (errOverStaging).
func (t *NVMe) maxRecord() int64 { return (t.staging / 2) &^ int64(t.align-1) }

// errStagingBusy: the staging memory is taken by other transfers now,
// each of which frees its buffers as its device transfer ends: CodeBusy,
// which both SDKs send again (a stream's later chunk waits it out:
// readPatient). Before, it carried CodeNoSpace, which the SDKs return at
// once with advice to delete values: 9 of 12 parallel 10 MiB puts on a
// node with 16 MiB of staging and an empty tier failed so, and one 10 MiB
// put failed alone with 1 MiB of staging, its second chunk refused while
// the first was written (a new user's trial).
var errStagingBusy error = &wire.Error{Code: wire.CodeBusy,
	Msg: "the NVMe tier's staging memory (--nvme-staging) is taken by other transfers now; nothing stored was changed; send again shortly"}

// errReadIO: the device failed a read. The value is still stored (a
// read changes nothing); this read of it failed. Before, a read's EIO
// answered ErrIO's "device I/O error; the value is not stored", which a
// hostile trial's client took for a lost value.
var errReadIO error = &wire.Error{Code: wire.CodeIO, Msg: "device I/O error reading the value: it is still stored, but could not be read"}

// errShrunk: a transfer failed on a device now smaller than the tier.
var errShrunk error = &wire.Error{Code: wire.CodeIO, Msg: "device I/O error: the NVMe device shrank under the node"}

// ioErr classifies a device error of a write (write) or a read for the
// client, all with wire.CodeIO but the first: ENOSPC from a device still
// its size (a file system under a file-backed device filling up) is
// ErrNoSpace; a transfer failing on a device that shrank under the tier
// says so; the rest is ErrIO (writes: nothing stored) or errReadIO.
// Before, a write past the end of a shrunk loop device (its ENOSPC) said
// "tier full" on a tier mostly empty, as a hostile trial found.
func (t *NVMe) ioErr(write bool, err error) error {
	op := "read"
	if write {
		op = "write"
	}
	if !errors.Is(err, nvme.ErrClosed) {
		t.deviceError(write, err)
	}
	if cur, cerr := t.dev.CurrentSize(); cerr == nil && cur < t.dev.Size() {
		what := "it could not be read (it is still indexed)"
		if write {
			what = "the value is not stored"
		}
		return fmt.Errorf("nvme tier %s: %w: %s is now %d bytes, smaller than the tier's %d, and %s: %w",
			op, errShrunk, t.dev.Path(), cur, t.dev.Size(), what, err)
	}
	switch {
	case write && errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("nvme tier %s: %w: %w", op, ErrNoSpace, err)
	case write:
		return fmt.Errorf("nvme tier %s: %w: %w", op, ErrIO, err)
	}
	return fmt.Errorf("nvme tier %s: %w: %w", op, errReadIO, err)
}

// Create implements Tier: it reserves extents and staging buffers.
func (t *NVMe) Create(job, key []byte, size int64, m Meta) (Pending, error) {
	if err := t.checkKey(job, key); err != nil {
		return nil, err
	}
	if size < 0 || t.alloc.Round(size) > t.alloc.Capacity() {
		return nil, ErrTooLarge
	}
	if padded := (size + int64(t.align) - 1) &^ int64(t.align-1); t.staging > 0 && padded > t.maxRecord() {
		return nil, fmt.Errorf("nvme tier: %d-byte value: %w", size, errOverStaging(t.staging))
	}
	info := m.info(size)
	v := &nvmeVersion{size: size, flags: info.Flags, ver: info.Version, object: info.ObjectSize}
	p := &nvmePending{t: t, job: string(job), key: string(key), v: v, ifAbsent: m.Flags&IfAbsent != 0}
	if err := t.reserve(p.v); err != nil {
		return nil, err
	}
	var err error
	if p.bufs, p.segs, err = t.buffers(size, nil, nil); err != nil {
		t.unreserve(p.v)
		return nil, err
	}
	return p, nil
}

// pieces is the most extents a value of size bytes may be scattered over:
// NVMeOptions.MaxExtents when set, else one a block. Before, it was 64, so
// a hostile trial's tier of 65,536 values of 100 bytes with every other
// one deleted, half free in 32,768 one-block holes, refused all 20 puts of
// 266,240 bytes (65 blocks) and of 1 MiB ("the free space is split in
// pieces too small").
func (t *NVMe) pieces(size int64) int {
	if t.maxExt > 0 {
		return t.maxExt
	}
	return int(min(t.alloc.Round(size)/t.alloc.Block(), math.MaxInt32))
}

func (t *NVMe) reserve(v *nvmeVersion) error {
	if v.size == 0 {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrClosed
	}
	ext, err := t.alloc.AllocScattered(v.size, t.pieces(v.size))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	v.ext = ext
	for _, e := range ext {
		v.alloc += e.Len
	}
	return nil
}

func (t *NVMe) unreserve(v *nvmeVersion) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.freeExtents(v)
}

// freeExtents returns a version's extents, once (a second call finds
// none); mu is held.
func (t *NVMe) freeExtents(v *nvmeVersion) {
	for _, e := range v.ext {
		if err := t.alloc.Free(e); err != nil {
			panic(fmt.Sprintf("nvme tier: %v", err)) // index and allocator disagree
		}
	}
	v.ext = nil
}

// buffers allocates the aligned chunks for a value of size bytes: bufs
// padded to the alignment, segs the same memory cut to the value's bytes,
// appended to the slices given (storage the caller already has, so a
// one-chunk value costs no slice allocation).
func (t *NVMe) buffers(size int64, bufs, segs [][]byte) ([][]byte, [][]byte, error) {
	for off := int64(0); off < size; off += int64(t.chunk) {
		n := int(min(int64(t.chunk), size-off))
		padded := (n + t.align - 1) &^ (t.align - 1)
		b, err := t.bufs.AllocAligned(padded, t.align)
		if err != nil {
			t.freeBuffers(bufs)
			return nil, nil, fmt.Errorf("nvme tier: buffer of %d bytes: %w: %w", padded, errStagingBusy, err)
		}
		bufs = append(bufs, b[:padded])
		segs = append(segs, b[:n])
	}
	return bufs, segs, nil
}

func (t *NVMe) freeBuffers(bufs [][]byte) {
	for _, b := range bufs {
		t.bufs.Free(b)
	}
}

// transfers maps the value's buffers onto its extents, appended to ios:
// buffer k covers value bytes [k*chunk, k*chunk+len(bufs[k])), and a buffer
// that straddles two extents becomes two transfers. Every piece stays
// aligned because chunks and extents are multiples of the alignment.
func (t *NVMe) transfers(v *nvmeVersion, bufs [][]byte, write bool, ios []nvme.IO) []nvme.IO {
	var off int64
	for _, b := range bufs {
		ios = rangeIOs(v, off, b, write, ios)
		off += int64(len(b))
	}
	return ios
}

// rangeIOs appends to ios the transfers that move the value's bytes
// [off, off+len(b)) (both multiples of the alignment, b padded) to or from
// b: one per extent the range touches.
func rangeIOs(v *nvmeVersion, off int64, b []byte, write bool, ios []nvme.IO) []nvme.IO {
	for _, e := range v.ext {
		if len(b) == 0 {
			break
		}
		if off >= e.Len {
			off -= e.Len
			continue
		}
		n := min(int64(len(b)), e.Len-off)
		ios = append(ios, nvme.IO{Write: write, Buf: b[:n], Off: e.Off + off})
		b, off = b[n:], 0
	}
	return ios
}

type nvmePending struct {
	t        *NVMe
	job, key string
	v        *nvmeVersion
	bufs     [][]byte // padded
	segs     [][]byte // the value's bytes
	done     bool
	ifAbsent bool
}

// info is the version's Info.
func (v *nvmeVersion) info() Info {
	return Info{Size: v.size, Flags: v.flags, Version: v.ver, ObjectSize: v.object}
}

// Buffers implements Pending.
func (p *nvmePending) Buffers() [][]byte { return p.segs }

// Commit implements Pending: it writes the value with direct I/O and then
// publishes it. A failed write frees everything and stores nothing.
func (p *nvmePending) Commit() (Info, error) {
	if p.done {
		return Info{}, errors.New("nvme tier: pending already finished")
	}
	p.done = true
	defer p.t.freeBuffers(p.bufs)
	for i, b := range p.bufs {
		clear(b[len(p.segs[i]):])
	}
	if err := p.t.dev.Do(p.t.transfers(p.v, p.bufs, true, make([]nvme.IO, 0, len(p.bufs)+len(p.v.ext)))); err != nil {
		p.t.unreserve(p.v)
		return Info{}, p.t.ioErr(true, err)
	}
	return p.t.publish(p.job, p.key, p.v, p.ifAbsent)
}

// Abort implements Pending.
// Key implements Pending.
func (p *nvmePending) Key() (job, key []byte) { return []byte(p.job), []byte(p.key) }

func (p *nvmePending) Abort() {
	if p.done {
		return
	}
	p.done = true
	p.t.freeBuffers(p.bufs)
	p.t.unreserve(p.v)
}

// publish installs v under (job, key) and returns the Info of the value
// it replaced; with ifAbsent and a value present it frees v instead and
// returns ErrExists.
func (t *NVMe) publish(job, key string, v *nvmeVersion, ifAbsent bool) (Info, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		t.freeExtents(v)
		return Info{}, ErrClosed
	}
	j := t.jobOf(job)
	var replaced Info
	cost := extCost(v) // v's cost to the index: its extents, and a new key's entry
	old := j.keys[key]
	if old != nil && ifAbsent {
		t.freeExtents(v)
		return Info{}, ErrExists
	}
	if old == nil {
		cost += indexCost(key)
	}
	// A new key is admitted, and a replacement whose extents cost more
	// than its old version's (it is more scattered).
	if grow, alloc := cost, v.alloc; old == nil || grow > extCost(old) {
		if old != nil {
			grow, alloc = grow-extCost(old), alloc-old.alloc
		}
		if err := t.admitKey(j.share, grow, alloc); err != nil {
			t.freeExtents(v)
			t.forgetEmpty(job, j)
			return Info{}, err
		}
	}
	if old != nil {
		replaced = old.info()
		t.retire(j, old)
	} else {
		t.values++
	}
	j.keys[key] = v
	j.peak = max(j.peak, len(j.keys))
	t.count(j, cost, v.alloc)
	return replaced, nil
}

// admitKey answers whether a new key of an owner's job (its share s)
// costing the index cost, its value alloc bytes, keeps the index within
// its bound (ErrIndexFull), the owner within its share and slack
// (ErrJobIndexFull) and the owners' costs beyond their shares within a
// quarter of it (ErrIndexSlackFull); mu is held.
func (t *NVMe) admitKey(s *nvmeShare, cost, alloc int64) error {
	if t.index+cost > t.maxIndex {
		return ErrIndexFull
	}
	before := t.beyond(s.index, s.used)
	after := t.beyond(s.index+cost, s.used+alloc)
	switch {
	case after <= before:
	case after > t.slack():
		return ErrJobIndexFull
	case t.over-t.pooled(s)+after > t.maxIndex/4:
		return ErrIndexSlackFull
	}
	return nil
}

// indexCost is what key costs the index (NVMeOptions.MaxIndexBytes).
func indexCost(key string) int64 { return int64(len(key)) + nvmeEntryCost }

// nvmeExtentCost is what each extent of a scattered value beyond its first
// costs the index: an nvme.Extent in the version's slice.
const nvmeExtentCost = int64(unsafe.Sizeof(nvme.Extent{}))

// extCost is what v's extents beyond the first cost the index. A value
// may be scattered over as many pieces as it has blocks (NVMeOptions.
// MaxExtents), 16 bytes of index a 4 KiB block, within the share its
// bytes give its job (1/64 of them), and counted so that the index bound
// holds the memory of the node however the device splinters.
func extCost(v *nvmeVersion) int64 { return nvmeExtentCost * int64(max(len(v.ext)-1, 0)) }

// unindex removes key from j's index; mu is held.
func (t *NVMe) unindex(j *nvmeJob, key string) {
	delete(j.keys, key)
	t.values--
	t.count(j, -indexCost(key), 0)
}

// retire unpublishes v's accounting and frees its extents unless an Open is
// still reading them; mu is held and the caller removes or replaces the map
// entry.
func (t *NVMe) retire(j *nvmeJob, v *nvmeVersion) {
	t.count(j, -extCost(v), -v.alloc)
	v.retired.Store(true)
	if v.readers.Load() == 0 {
		t.freeExtents(v)
	}
}

// Open implements Tier: it reads the value into fresh aligned buffers.
func (t *NVMe) Open(job, key []byte) (Value, error) { return t.open(job, key, true) }

// openUncharged is Open for the node's own reads (a move to the value's
// new owner, migrate.go), which are not the job's gets: they are not
// counted in, nor refused by, the job's share of the staging memory
// (chargeRead). Charged, the parallel reads of a drain refused each other
// busy: 15 of 16 values of 3 MiB failed to move with a 4 MiB share.
func (t *NVMe) openUncharged(job, key []byte) (Value, error) { return t.open(job, key, false) }

func (t *NVMe) open(job, key []byte, charge bool) (Value, error) {
	if err := t.checkKey(job, key); err != nil {
		return nil, err
	}
	v, sh, err := t.acquire(job, key, -1)
	if err != nil {
		return nil, err
	}
	val := &nvmeValue{t: t, v: v, sh: sh}
	if charge {
		val.charged = t.padded(v.size)
		if err := t.chargeRead(sh, val.charged); err != nil {
			t.doneReading(v)
			return nil, err
		}
	}
	val.bufs, val.segs, err = t.buffers(v.size, val.store[0:0:1], val.store[1:1:2])
	if err != nil {
		sh.staged.Add(-val.charged)
		t.doneReading(v)
		return nil, err
	}
	if err := t.dev.Do(t.transfers(v, val.bufs, false, val.ios[:0])); err != nil {
		t.freeBuffers(val.bufs)
		sh.staged.Add(-val.charged)
		t.doneReading(v)
		return nil, t.ioErr(false, err)
	}
	return val, nil
}

// OpenStart opens job/key like Open without waiting for the device: when
// started is true, size is the value's size in bytes and done is called
// once, from the goroutine that reaps the read (it must not block), with
// the open value or the read's error. With
// submit false the read waits for the next Flush (nvme.Device.Start). When
// started is false done is never called: err is the lookup's error
// (ErrNotFound, a bad key, ErrClosed), or nil when the read could not start
// at once (no free device slot, no io_uring, a buffer error), and the
// caller should use Open instead.
func (t *NVMe) OpenStart(job, key []byte, submit bool, done func(Value, error)) (size int64, started bool, err error) {
	if err := t.checkKey(job, key); err != nil {
		return 0, false, err
	}
	v, sh, err := t.acquire(job, key, -1)
	if err != nil {
		return 0, false, err
	}
	val := &nvmeValue{t: t, v: v, sh: sh, charged: t.padded(v.size)}
	if err := t.chargeRead(sh, val.charged); err != nil {
		t.doneReading(v)
		return 0, false, err
	}
	size = v.size // v may be released by done before Start returns
	val.bufs, val.segs, err = t.buffers(v.size, val.store[0:0:1], val.store[1:1:2])
	if err != nil {
		sh.staged.Add(-val.charged)
		t.doneReading(v)
		return 0, false, nil
	}
	ios := t.transfers(v, val.bufs, false, val.ios[:0])
	if !t.dev.Start(ios, false, func(err error) { val.readDone(err, done) }) {
		t.freeBuffers(val.bufs)
		sh.staged.Add(-val.charged)
		t.doneReading(v)
		return 0, false, nil
	}
	if submit {
		t.dev.FlushSoon()
	}
	return size, true, nil
}

// ClaimFlush reports whether the caller is to arrange a Flush for the
// reads it queued with OpenStart: true once until that Flush begins, so
// callers on several goroutines arrange one between them.
func (t *NVMe) ClaimFlush() bool { return !t.flushClaimed.Swap(true) }

// Flush hands the reads OpenStart queued unsubmitted to the device, or,
// while it is busy, leaves them for the next completion's reaping
// (nvme.Device.FlushSoon). It drops the claim first, so a read queued
// after its look at the queue finds no claim and arranges another Flush.
func (t *NVMe) Flush() {
	t.flushClaimed.Store(false)
	t.dev.FlushSoon()
}

// readDone ends a read begun by OpenStart: a failed read gives its
// buffers and reader reference back before done hears of it.
func (v *nvmeValue) readDone(err error, done func(Value, error)) {
	if err != nil {
		v.t.freeBuffers(v.bufs)
		v.sh.staged.Add(-v.charged)
		v.t.doneReading(v.v)
		done(nil, v.t.ioErr(false, err))
		return
	}
	done(v, nil)
}

// acquire looks up job/key and takes a reader reference on its version,
// which keeps the version's extents allocated until doneReading, even if
// the value is deleted or overwritten meanwhile. A value of at most
// minSize bytes is left alone: acquire returns nil and no error. It takes
// only the read lock: gets on several goroutines do not wait for each
// other.
func (t *NVMe) acquire(job, key []byte, minSize int64) (*nvmeVersion, *nvmeShare, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		return nil, nil, ErrClosed
	}
	j := t.jobs[string(job)]
	var v *nvmeVersion
	if j != nil {
		v = j.keys[string(key)]
	}
	switch {
	case v == nil:
		return nil, nil, ErrNotFound
	case v.size <= minSize:
		return nil, nil, nil
	}
	v.readers.Add(1)
	return v, j.share, nil
}

// errReadShare refuses a read that would take an owner's reads past their
// share of the staging memory (readShare).
var errReadShare = &wire.Error{Code: wire.CodeBusy,
	Msg: "the gets of the job's owner (its jobs together) on this node hold more than its share of the NVMe tier's staging memory (a quarter of it) " +
		"in replies their clients have not taken yet; read those replies, or retry"}

// chargeRead counts n bytes of staging memory in the reads of s's jobs,
// or refuses them (errReadShare) when they would hold more than
// readShare and other reads of theirs hold some: an owner's only read is
// never refused, so one get of any size the limits allow can always be
// made. The read gives them back to s, whatever its job's owner is by
// then.
func (t *NVMe) chargeRead(s *nvmeShare, n int64) error {
	if u := s.staged.Add(n); t.readShare > 0 && u > n && u > t.readShare {
		s.staged.Add(-n)
		return errReadShare
	}
	return nil
}

// padded is the staging memory a whole read of size bytes takes:
// buffers of at most one chunk, each padded to the alignment. The chunk
// is a multiple of the alignment (NewNVMe refuses another), so only the
// last buffer pads: size rounded up to the alignment, with no loop over
// the chunks on a get's path.
func (t *NVMe) padded(size int64) int64 {
	return (size + int64(t.align) - 1) &^ int64(t.align-1)
}

// doneReading drops a reader reference from acquire. The last one of a
// retired version frees its extents. The count and the flag are read
// again under the write lock, where no acquire runs: between this
// reader's decrement and its look at retired, another reader may have
// acquired the version and the retire seen that one (so the extents are
// still read), or the retire may have freed them already (a second free
// finds none).
func (t *NVMe) doneReading(v *nvmeVersion) {
	if v.readers.Add(-1) != 0 || !v.retired.Load() {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if v.readers.Load() == 0 {
		t.freeExtents(v)
	}
}

// lookup returns the committed version or nil; mu is held.
func (t *NVMe) lookup(job, key []byte) *nvmeVersion {
	j := t.jobs[string(job)]
	if j == nil {
		return nil
	}
	return j.keys[string(key)]
}

// nvmeValue is an open value: its bytes in buffers of its own, plus a
// reader reference on its version, so that (as the Tier contract says) the
// extents of a deleted or overwritten value are reused only after Release.
type nvmeValue struct {
	t        *NVMe
	v        *nvmeVersion
	sh       *nvmeShare // whose reads it is counted in (chargeRead)
	charged  int64
	bufs     [][]byte
	segs     [][]byte
	released atomic.Bool
	// store and ios back bufs, segs and the read's transfers of a value
	// of one chunk (at most two extents), so that its GET allocates
	// nothing but this struct.
	store [2][]byte
	ios   [2]nvme.IO
}

func (v *nvmeValue) Size() int64        { return v.v.size }
func (v *nvmeValue) Flags() PutFlags    { return v.v.flags }
func (v *nvmeValue) Version() uint64    { return v.v.ver }
func (v *nvmeValue) Segments() [][]byte { return v.segs }

// Release implements Value; the buffers go back to the source and the
// version's extents are freed if it was retired meanwhile.
func (v *nvmeValue) Release() {
	if v.released.Swap(true) {
		panic("nvme tier: value released twice")
	}
	v.t.freeBuffers(v.bufs)
	v.sh.staged.Add(-v.charged)
	v.t.doneReading(v.v)
}

// Stat implements Tier.
func (t *NVMe) Stat(job, key []byte) (Info, error) {
	if err := t.checkKey(job, key); err != nil {
		return Info{}, err
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		return Info{}, ErrClosed
	}
	v := t.lookup(job, key)
	if v == nil {
		return Info{}, ErrNotFound
	}
	return v.info(), nil
}

// Delete implements Tier.
func (t *NVMe) Delete(job, key []byte) (Info, error) { return t.remove(job, key, false, 0) }

// DeleteVersion implements Tier.
func (t *NVMe) DeleteVersion(job, key []byte, v uint64) (Info, error) {
	return t.remove(job, key, true, v)
}

// remove unpublishes (job, key), when cond is set only if its version is
// ver, and returns its Info.
func (t *NVMe) remove(job, key []byte, cond bool, ver uint64) (Info, error) {
	if err := t.checkKey(job, key); err != nil {
		return Info{}, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return Info{}, ErrClosed
	}
	j := t.jobs[string(job)]
	if j == nil || j.keys[string(key)] == nil {
		return Info{}, ErrNotFound
	}
	v := j.keys[string(key)]
	if cond && v.ver != ver {
		return Info{}, ErrConflict
	}
	t.retire(j, v)
	t.unindex(j, string(key))
	t.forgetEmpty(string(job), j)
	return v.info(), nil
}

// List implements Tier. The matching keys are gathered under the read
// lock and sorted; fn runs with no lock held.
func (t *NVMe) List(job, prefix, after []byte, fn func(key []byte, info Info) bool) error {
	var items []listEntry
	err := t.scanKeys(job, prefix, after, func(key string, info Info) {
		items = append(items, listEntry{key, info})
	})
	if err != nil {
		return err
	}
	slices.SortFunc(items, func(a, b listEntry) int { return strings.Compare(a.key, b.key) })
	// A key put again during the scan may come twice (scanKeys): once.
	items = slices.CompactFunc(items, func(a, b listEntry) bool { return a.key == b.key })
	for _, it := range items {
		if !fn([]byte(it.key), it.info) {
			break
		}
	}
	return nil
}

// listScan is scanKeys handing each key as a byte slice that views the
// index's own string: fn must not modify it or keep it past the call. The
// node's listing snapshots (list.go) gather keys with it.
func (t *NVMe) listScan(job, prefix, after []byte, fn func(key []byte, info Info)) error {
	return t.scanKeys(job, prefix, after, func(key string, info Info) {
		fn(unsafe.Slice(unsafe.StringData(key), len(key)), info)
	})
}

// scanKeys calls fn for each of the job's keys that begins with prefix and
// sorts after `after` (empty: every one), in no particular order, under the
// read lock: fn must not call the tier.
//
// The lock is the whole tier's, so the scan lets it go every scanBatch
// keys: a writer waiting (another job's put reserving its extents, on an
// event loop) gets in between, and with it the readers queued behind
// that writer. Held for the whole scan, a job's listings of a prefix none
// of its 253,000 keys has (each scan visits every key of the job) held
// it 5-38 ms at a time, back to back on the scan lane: another job's
// 4 KiB NVMe puts went from 0.1 ms to 18-24 ms p50, waiting 4-8 ms p50
// (up to 19 ms) for the lock on their event loop (reserve), which served
// nothing else meanwhile (TestH38aNVMeListingHoldsTierLock,
// TestH38aNVMeScanLockWait).
// Keys inserted while the lock is let go may be called or not, and a key
// deleted and put again meanwhile may be called twice (Go's map
// iteration); a key present all along is called exactly once. Callers that
// need each key once (List, listing snapshots) drop repeats after sorting.
func (t *NVMe) scanKeys(job, prefix, after []byte, fn func(key string, info Info)) error {
	if len(job) == 0 || len(job) > t.maxJob {
		return ErrBadKey
	}
	t.mu.RLock()
	if t.closed {
		t.mu.RUnlock()
		return ErrClosed
	}
	j := t.jobs[string(job)]
	if j == nil {
		t.mu.RUnlock()
		return nil
	}
	j.walks.Add(1)
	defer j.walks.Add(-1)
	seen := 0
	for k, v := range j.keys {
		if seen++; seen%scanBatch == 0 {
			t.mu.RUnlock()
			// Yield here, with the lock let go: a scan that ran on would
			// be preempted by the runtime (every 10 ms) wherever it is,
			// almost always holding the lock, and a writer then waited
			// for it to be scheduled again.
			runtime.Gosched()
			t.mu.RLock()
			if t.closed {
				t.mu.RUnlock()
				return ErrClosed
			}
		}
		if len(k) >= len(prefix) && k[:len(prefix)] == string(prefix) && k > string(after) {
			fn(k, v.info())
		}
	}
	t.mu.RUnlock()
	return nil
}

// DropJob implements Tier. The lock is the whole tier's, so the walk lets
// it go every scanBatch keys, as scanKeys does: held for the whole walk,
// a hostile trial's drop of a job of 332,000 one-byte values held it for
// 0.5-1.5 s, and every event loop with an NVMe request of another job
// waiting for it served nothing meanwhile, DRAM requests included
// (TestNVMeDropJobLetsOthersIn). A key the walk reaches after the lock
// was let go is looked up again: it may have been deleted or replaced
// meanwhile. Keys put meanwhile may be dropped or not, as keys put during
// the DRAM tier's drop (a dropped job's puts are refused: jobtable.go).
func (t *NVMe) DropJob(job []byte, keepPersistent bool) Dropped {
	t.mu.Lock()
	defer t.mu.Unlock()
	j := t.jobs[string(job)]
	if j == nil {
		return Dropped{}
	}
	j.walks.Add(1)
	var freed Dropped
	seen := 0
	for k, v := range j.keys {
		if seen++; seen%scanBatch == 0 {
			t.mu.Unlock()
			if testHookNVMeDropBatch != nil {
				testHookNVMeDropBatch(k)
			}
			runtime.Gosched()
			t.mu.Lock()
			if t.closed || t.jobs[string(job)] != j {
				j.walks.Add(-1)
				return freed // closed, or emptied and forgotten meanwhile
			}
			var ok bool
			if v, ok = j.keys[k]; !ok {
				continue
			}
		}
		if keepPersistent && v.flags&Persist != 0 {
			continue
		}
		freed.Values++
		freed.Bytes += v.alloc
		t.retire(j, v)
		t.unindex(j, k)
	}
	j.walks.Add(-1) // over: forgetEmpty may copy the map
	t.forgetEmpty(string(job), j)
	return freed
}

// testHookNVMeDropBatch, when set by a test, runs in DropJob while the
// lock is let go, with the key the walk looks at next.
var testHookNVMeDropBatch func(key string)

// Usage implements Tier.
func (t *NVMe) Usage() Usage {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return Usage{Capacity: t.alloc.Capacity(), Used: t.alloc.Used(), Values: t.values}
}

// JobUsage implements Tier: the allocated bytes of the job's values.
func (t *NVMe) JobUsage(job []byte) int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if j := t.jobs[string(job)]; j != nil {
		return j.used
	}
	return 0
}

// Device is the tier's device.
func (t *NVMe) Device() *nvme.Device { return t.dev }

// Close implements Tier. It forgets the index (the data on the device is
// not meant to outlive the node) but neither closes the device nor frees
// the buffers of values still open: Release does that.
func (t *NVMe) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	t.jobs, t.shares = nil, nil
	return nil
}

// nvmeStream reads one version of a value in chunks, for a GET that sends
// chunk k while chunk k+1 is read (the node's getStream). Chunk k is value
// bytes [k*chunk, min((k+1)*chunk, size)), read into an aligned buffer of
// its own, padded to the alignment. The stream holds a reader reference on
// the version from OpenStream to close, so the extents it reads stay
// allocated (and are not rewritten) however long the stream lasts, even if
// the value is deleted or overwritten meanwhile.
type nvmeStream struct {
	t       *NVMe
	v       *nvmeVersion
	sh      *nvmeShare // whose reads it is counted in (chargeRead)
	charged int64
	chunk   int
	closed  atomic.Bool
}

// OpenStream opens job/key for reading in chunks of chunk bytes (a
// multiple of the alignment), or of the tier's ChunkSize when that is
// smaller: a chunk is read into one buffer. A value of at most minSize
// bytes is not opened: OpenStream returns nil and no error, and the caller
// reads it whole. Errors: those of the lookup (ErrBadKey, ErrNotFound,
// ErrClosed).
func (t *NVMe) OpenStream(job, key []byte, chunk int, minSize int64) (*nvmeStream, error) {
	if err := t.checkKey(job, key); err != nil {
		return nil, err
	}
	if chunk <= 0 || chunk%t.align != 0 {
		return nil, fmt.Errorf("nvme tier: stream chunk %d is not a positive multiple of the alignment %d", chunk, t.align)
	}
	chunk = min(chunk, t.chunk)
	v, sh, err := t.acquire(job, key, minSize)
	if v == nil {
		return nil, err
	}
	// A stream holds at most its window of chunk buffers (ops.go).
	s := &nvmeStream{t: t, v: v, sh: sh, chunk: chunk, charged: min(t.padded(v.size), int64(streamWindow*chunk))}
	if err := t.chargeRead(sh, s.charged); err != nil {
		t.doneReading(v)
		return nil, err
	}
	return s, nil
}

func (s *nvmeStream) size() int64     { return s.v.size }
func (s *nvmeStream) flags() PutFlags { return s.v.flags }
func (s *nvmeStream) version() uint64 { return s.v.ver }

// chunks is the number of chunks, 0 for an empty value.
func (s *nvmeStream) chunks() int { return int((s.v.size + int64(s.chunk) - 1) / int64(s.chunk)) }

// buffer allocates chunk k's buffer (padded) and returns it with the
// value's bytes in it (seg) and the transfers that read it.
func (s *nvmeStream) buffer(k int, ios []nvme.IO) (buf, seg []byte, _ []nvme.IO, err error) {
	off := int64(k) * int64(s.chunk)
	bufs, segs, err := s.t.buffers(min(int64(s.chunk), s.v.size-off), nil, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	return bufs[0], segs[0], rangeIOs(s.v, off, bufs[0], false, ios), nil
}

// start begins reading chunk k without waiting, like NVMe.OpenStart:
// when it reports true, done is called once from the goroutine that reaps
// the read (it must not block) with the chunk's buffer, its value bytes,
// and the read's error (then buf and seg are nil, the buffer freed). When
// it reports false nothing was started and done is never called: read the
// chunk with readWait instead.
func (s *nvmeStream) start(k int, submit bool, done func(buf, seg []byte, err error)) bool {
	buf, seg, ios, err := s.buffer(k, make([]nvme.IO, 0, 2))
	if err != nil {
		return false
	}
	ok := s.t.dev.Start(ios, submit, func(err error) {
		if err != nil {
			s.t.bufs.Free(buf)
			done(nil, nil, s.t.ioErr(false, err))
			return
		}
		done(buf, seg, nil)
	})
	if !ok {
		s.t.bufs.Free(buf)
	}
	return ok
}

// readWait reads chunk k, waiting for the device; on error the buffer is
// freed.
func (s *nvmeStream) readWait(k int) (buf, seg []byte, err error) {
	buf, seg, ios, err := s.buffer(k, make([]nvme.IO, 0, 2))
	if err != nil {
		return nil, nil, err
	}
	if err := s.t.dev.Do(ios); err != nil {
		s.t.bufs.Free(buf)
		return nil, nil, s.t.ioErr(false, err)
	}
	return buf, seg, nil
}

// flush hands the device every read started with submit false.
func (s *nvmeStream) flush() { s.t.dev.Flush() }

// free returns a chunk buffer from start or readWait.
func (s *nvmeStream) free(buf []byte) { s.t.bufs.Free(buf) }

// close drops the stream's reader reference, once every chunk buffer has
// been freed and no read is in flight; a retired version's extents are
// freed then. A second close panics.
func (s *nvmeStream) close() {
	if s.closed.Swap(true) {
		panic("nvme tier: stream closed twice")
	}
	s.sh.staged.Add(-s.charged)
	s.t.doneReading(s.v)
}
