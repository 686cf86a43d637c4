package dataplane

import (
	"github.com/pocketstore/pocket/wire"
)

// Tier errors. Each is a *wire.Error carrying the code a node answers it
// with, so errors.Is matches it against the wire sentinel of its code
// (errors.Is(err, wire.ErrNotFound)), against any reply of that code, and
// against every other package's error of that code (ErrClosed and
// nvme.ErrClosed). A tier wraps one with %w to add detail ("dram tier:
// 5000-byte value, capacity 1048576: ..."); the node answers with the code
// and the whole message (wire.ErrorOf). The Msg of each is the detail a
// reply carries when the error comes unwrapped.
var (
	// ErrNotFound: no value is stored under the job and key.
	ErrNotFound error = &wire.Error{Code: wire.CodeNotFound, Msg: "key not found"}
	// ErrNoSpace: the tier cannot hold the value; nothing stored was touched.
	ErrNoSpace error = &wire.Error{Code: wire.CodeNoSpace, Msg: "tier full; nothing stored was changed"}
	// ErrTooLarge: the value is larger than the tier ever accepts.
	ErrTooLarge error = &wire.Error{Code: wire.CodeTooLarge, Msg: "value too large for this tier"}
	// ErrClosed: the tier was closed (the node is shutting down).
	ErrClosed error = &wire.Error{Code: wire.CodeClosed, Msg: "tier closed"}
	// ErrIO: the device failed a write; the value is not stored. A
	// failed read is an error of the same code saying the value is still
	// stored (the NVMe tier's errReadIO); errors.Is matches it too.
	ErrIO error = &wire.Error{Code: wire.CodeIO, Msg: "device I/O error; the value is not stored"}
	// ErrBadKey: the key or job id is empty or longer than wire.MaxKeyLen.
	ErrBadKey error = &wire.Error{Code: wire.CodeBadKey, Msg: "bad job id or key"}
	// ErrExists: a put with IfAbsent found a value; nothing changed.
	ErrExists error = &wire.Error{Code: wire.CodeExists, Msg: "key holds a value; nothing stored was changed"}
	// ErrConflict: a conditional delete found another version; nothing changed.
	ErrConflict error = &wire.Error{Code: wire.CodeConflict, Msg: "value has another version; nothing was changed"}
)

// Kind names a tier's medium. It is wire.Tier, the one definition the data
// plane, the controller and the SDK share; the numbers travel on the wire
// and must not change.
type Kind = wire.Tier

// Tier kinds (wire.TierDRAM and wire.TierNVMe).
const (
	KindDRAM = wire.TierDRAM
	KindNVMe = wire.TierNVMe
)

// PutFlags modify how a value is stored.
type PutFlags uint32

// Put flags. The stored bits are the wire's (a tier keeps them and reports
// them in Info.Flags), defined there once.
const (
	// Persist keeps the value when its job is dropped (Pocket's
	// PERSIST_AFTER_JOB).
	Persist = PutFlags(wire.FlagPersist)
	// Manifest marks the manifest of a chunked object (wire/objects.go).
	Manifest = PutFlags(wire.FlagManifest)
	// Chunk marks one chunk of an object version.
	Chunk = PutFlags(wire.FlagChunk)
	// IfAbsent makes Commit store nothing and fail with ErrExists when
	// the key holds a value. It is not stored, and lies above the wire's
	// 16 flag bits.
	IfAbsent PutFlags = 1 << 16
	// storedFlags are the bits a tier keeps with a value.
	storedFlags = PutFlags(wire.StoredFlags)
)

// Meta is what a put stores besides the bytes.
type Meta struct {
	Flags PutFlags
	// Version is the object version the value belongs to (0: none).
	Version uint64
	// ObjectSize is, for a manifest, the whole object's bytes; 0 means
	// the value's own size.
	ObjectSize int64
}

// Usage is a tier's capacity and occupancy in bytes. Used counts what values
// occupy in the medium, including the rounding of size classes or extents,
// so Capacity-Used is what can still be stored.
type Usage struct {
	Capacity int64
	Used     int64
	Values   int64 // number of committed values
}

// Info describes one stored value.
type Info struct {
	Size    int64 // value bytes
	Flags   PutFlags
	Version uint64 // object version (0: none)
	// ObjectSize is the size a reader of the object sees: for a manifest
	// the whole object's bytes, else Size.
	ObjectSize int64
}

// info builds an Info from a put's size and Meta.
func (m Meta) info(size int64) Info {
	obj := m.ObjectSize
	if obj == 0 {
		obj = size
	}
	return Info{Size: size, Flags: m.Flags & storedFlags, Version: m.Version, ObjectSize: obj}
}

// Tier stores values by (job, key). The DRAM tier, the NVMe tier and the
// fault-injecting wrapper implement it, and one test suite (tiertest) runs
// against each.
//
// Concurrency: every method is safe to call from many goroutines at once.
// Job and key slices are only read during the call; a tier copies what it
// keeps, so callers may reuse their buffers (the event loop's read buffer)
// as soon as a call returns.
//
// Blocking: when Blocking reports false (DRAM), no method waits for I/O and
// the event loop calls them inline. When it reports true (NVMe), Commit and
// Open may wait for a device and the node calls them from a bounded pool of
// goroutines, never from an event loop.
type Tier interface {
	Kind() Kind
	Blocking() bool

	// Create reserves room for a value of size bytes. The caller fills
	// the Pending's buffers completely, then calls Commit or Abort exactly
	// once. A full tier returns ErrNoSpace and nothing stored changes.
	Create(job, key []byte, size int64, m Meta) (Pending, error)

	// Open returns a reference to the committed value under (job, key),
	// or ErrNotFound. The value's bytes stay valid and unchanged until
	// Release, even if the key is overwritten or deleted meanwhile.
	Open(job, key []byte) (Value, error)

	// Stat reports a committed value's Info, or ErrNotFound.
	Stat(job, key []byte) (Info, error)

	// Delete removes the value and returns its Info; its space is reused
	// once open references are released. It returns ErrNotFound when
	// nothing was stored.
	Delete(job, key []byte) (Info, error)

	// DeleteVersion is Delete when the value's version is v; another
	// version gives ErrConflict and changes nothing.
	DeleteVersion(job, key []byte, v uint64) (Info, error)

	// List calls fn for each of the job's keys that begins with prefix,
	// in ascending byte order of key, starting after the key `after`
	// (empty: from the first). The key slice is valid only during the
	// call. fn returns false to stop.
	List(job, prefix, after []byte, fn func(key []byte, info Info) bool) error

	// DropJob deletes every value of the job, except those stored with
	// Persist when keepPersistent is true, and returns how many values it
	// deleted and the bytes freed.
	DropJob(job []byte, keepPersistent bool) Dropped

	// Usage reports the whole tier; JobUsage one job's bytes stored.
	Usage() Usage
	JobUsage(job []byte) int64

	// Close releases the medium. Values still open stay readable until
	// released; every other call then returns ErrClosed.
	Close() error
}

// Pending is a value being written. Buffers returns the memory to fill,
// in order, totalling exactly the size given to Create; for the DRAM tier
// these are slab chunks, so the event loop receives the payload straight into
// its final place. The slices stay valid until Commit or Abort returns.
type Pending interface {
	Buffers() [][]byte
	// Commit publishes the value, replacing any older value of the key
	// (whose space is freed once its readers release it), and returns the
	// replaced value's Info (the zero Info when there was none). With
	// IfAbsent and a value present it stores nothing and returns
	// ErrExists. On any error the reservation is freed.
	Commit() (Info, error)
	// Abort frees the reservation; nothing becomes visible.
	Abort()
	// Key returns the job and key given to Create, valid until Commit or
	// Abort returns.
	Key() (job, key []byte)
}

// Value is a reference to a committed value. Segments returns its bytes in
// order (one or more slices totalling Size); they stay valid until Release,
// which must be called exactly once. The event loop hands the segments to
// writev and releases the value when the kernel has taken the bytes.
type Value interface {
	Size() int64
	Flags() PutFlags
	Version() uint64
	Segments() [][]byte
	Release()
}

// listScanner is a tier that visits a job's keys without ordering them
// (DRAM and NVMe: listScan). listScan calls fn for each of the job's keys
// that begins with prefix and sorts after `after` (empty: every one), in
// no particular order, under the tier's read lock (DRAM: one shard's at a
// time; NVMe: the index's): fn must be quick, must not call the tier, and
// must not keep the key slice past the call. It allocates nothing per key.
// A key put or deleted during the scan may or may not be visited.
type listScanner interface {
	listScan(job, prefix, after []byte, fn func(key []byte, info Info)) error
}

// scanKeys visits the job's keys under prefix after `after` as listScan
// does, with the tier's listScan when it has one; a tier without (a
// wrapper such as Faulty) is read through List, which gathers and sorts.
// It returns the tier's error: ErrBadKey for a bad job, ErrClosed.
//
// Every pass of the node over all of a job's keys that keeps only some of
// them (a listing snapshot, a move, a count of what is left) goes through
// here, so that what it allocates follows the keys it keeps, not the keys
// the job holds.
func scanKeys(t Tier, job, prefix, after []byte, fn func(key []byte, info Info)) error {
	if s, ok := t.(listScanner); ok {
		return s.listScan(job, prefix, after, fn)
	}
	return t.List(job, prefix, after, func(key []byte, info Info) bool { fn(key, info); return true })
}

// Dropped is what a drop of a job's values deleted: the values, and the
// bytes they held in their tier (allocated bytes: DRAM records, NVMe
// blocks).
type Dropped struct {
	Values, Bytes int64
}

// add is d plus o.
func (d Dropped) add(o Dropped) Dropped {
	return Dropped{Values: d.Values + o.Values, Bytes: d.Bytes + o.Bytes}
}
