package pocket

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/wire"
	"golang.org/x/sync/errgroup"
)

// Errors of the SDK. Node errors come back as *wire.Error and match the
// wire sentinels (wire.ErrNotFound, wire.ErrNoSpace, ...) with errors.Is;
// these aliases spare callers the wire import. An error with a wire code
// is a *wire.Error of that code, so errors.Is matches it whether the SDK
// or a node found it.
var (
	ErrNotFound = wire.ErrNotFound
	ErrNoSpace  = wire.ErrNoSpace
	// ErrBusy: a node refused the request for now and stored nothing
	// (its scan lane full, or the job's puts still arriving there over
	// their bound). The SDK retries busy itself (puts for up to 10 s,
	// listings until ctx ends) and returns it only once it gives up.
	ErrBusy = wire.ErrBusy
	// ErrUnavailable: the node holding the data cannot be reached.
	ErrUnavailable = wire.ErrUnavailable
	// ErrBadName: an empty name, one over the key limit or one containing
	// the reserved byte 0x00. It carries wire.CodeBadKey, the code a node
	// answers such a key with.
	ErrBadName error = &wire.Error{Code: wire.CodeBadKey, Msg: "key"}
	// ErrCorrupt: a manifest or chunk does not match what was written, or
	// a chunk of the current version of an object is gone (its node lost
	// it).
	ErrCorrupt = errors.New("pocket: corrupt object")
	// ErrConflict: a streamed read found its object replaced by another
	// version after it had handed out bytes of the first; nothing it
	// returned was torn, but the rest is gone. Read again.
	ErrConflict = wire.ErrConflict
	// ErrLost: the value's node left the job's map dead (past the
	// controller's grace), so the value, if it was written, is gone:
	// recompute it. It carries wire.CodeLost. See lost.go.
	ErrLost = wire.ErrLost
)

// PutOption and GetOption modify single calls.
type (
	PutOption func(*putOpts)
	GetOption func(*getOpts)
)

type putOpts struct{ flags uint16 }
type getOpts struct{ flags uint16 }

// Persist keeps the value after the job is deregistered (Pocket's
// PERSIST_AFTER_JOB).
func Persist() PutOption { return func(o *putOpts) { o.flags |= wire.FlagPersist } }

// DeleteAfterRead deletes the value once read (Pocket's DELETE_AFTER_READ).
// Only the version read is deleted, and only after the whole value has been
// read: a failed read deletes nothing, and a value written meanwhile stays.
func DeleteAfterRead() GetOption { return func(o *getOpts) { o.flags |= wire.FlagDeleteAfterRead } }

func checkName(key string) error {
	if max := wire.DefaultMaxKeyLen - 40; key == "" || len(key) > max || bytes.IndexByte([]byte(key), 0) >= 0 {
		return fmt.Errorf("%w %s (%d bytes): want 1 to %d bytes, no NUL", ErrBadName, shownName(key), len(key), max)
	}
	return nil
}

// shownName is key quoted for an error message, cut after 64 bytes: a
// refused key of 64 KiB made an error of 64 KiB.
func shownName(key string) string {
	const limit = 64
	if len(key) <= limit {
		return strconv.Quote(key)
	}
	return strconv.Quote(key[:limit]) + "..."
}

// newVersion picks an object version: random, non-zero, so that two
// writers of one key never share chunk names.
func newVersion() uint64 {
	for {
		if v := rand.Uint64(); v != 0 {
			return v
		}
	}
}

// Put stores value under key, replacing any older value whole (Pocket
// refused to overwrite; we replace, as a file system does). The last put
// to complete wins; a get never sees a mix of two puts. A put that fails
// leaves the older value and no chunk behind (see the package doc). A
// chunked put refused for space after a chunk of its own was stored tries
// again, up to 5 times after random pauses (spacerace.go).
func (j *Job) Put(ctx context.Context, key string, value []byte, opts ...PutOption) error {
	if err := checkName(key); err != nil {
		return err
	}
	var o putOpts
	for _, f := range opts {
		f(&o)
	}
	cs := j.s.cfg.ChunkSize
	if int64(len(value)) <= cs {
		return j.wrap("put", key, recordNote(j.putSmall(ctx, key, o.flags, value), "the value whole", int64(len(value)), cs))
	}
	n := int((int64(len(value)) + cs - 1) / cs)
	for try := 0; ; try++ {
		w := j.newObject(key, o.flags)
		err := w.putChunks(ctx, value, cs, n)
		if err == nil {
			return j.wrap("put", key, w.commit(ctx, wire.Manifest{Version: w.ver, Size: int64(len(value)), Chunk: cs, Count: n}))
		}
		w.abortUnconfirmed()
		if !againAfterSpaceRace(ctx, w, err, try) { // spacerace.go
			return j.wrap("put", key, recordNote(err, "a chunk", min(cs, int64(len(value))), cs))
		}
	}
}

// putChunks stores value's n chunks of cs bytes, Config.Parallel at once.
func (w *objectWrite) putChunks(ctx context.Context, value []byte, cs int64, n int) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(w.j.s.cfg.Parallel)
	for i := 1; i <= n; i++ {
		lo := int64(i-1) * cs
		part := value[lo:min(lo+cs, int64(len(value)))]
		g.Go(func() error { return w.putChunk(gctx, i, part) })
	}
	return g.Wait()
}

// recordNote adds to a node's refusal of a record as too large
// (wire.ErrTooLarge: an NVMe tier's staging memory, --nvme-staging, holds
// a record whole) which record was refused, of how many bytes, and that
// values over Config.ChunkSize (chunk bytes) are stored in chunks of that
// size. The node names only its own limit, so a value of 100 MiB stored in
// 16 MiB chunks read as refused whole (a new user's trial). Other errors
// are returned as they are; the code is unchanged.
func recordNote(err error, record string, size, chunk int64) error {
	if err == nil || !errors.Is(err, wire.ErrTooLarge) {
		return err
	}
	return fmt.Errorf("%w (the record refused was %s, %d bytes; values over the client's chunk size, %d bytes, are stored in chunks of that size: "+
		"a smaller chunk size stores this value (Go pocket.Config.ChunkSize, Python Client(chunk_size=...), pocket put --chunk-size), "+
		"or a node with a larger --nvme-staging)", err, record, size, chunk)
}

// putSmall stores a value as one record under its key, and drops the
// chunks of a chunked object it replaced.
func (j *Job) putSmall(ctx context.Context, key string, flags uint16, value []byte) error {
	if err := j.fences.await(ctx, key, false); err != nil {
		return err
	}
	return j.finish(ctx, key, false, func(ctx context.Context) error {
		r, _, err := j.doReq(ctx, wire.OpPut, flags, []byte(key), 0, reqExtra{version: newVersion()}, value, nil)
		if err == nil {
			j.dropReplaced(r.Meta.Version)
		}
		return err
	})
}

func wrap(op, key string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("pocket: %s %q: %w", op, key, err)
}

// wrap is wrap with the job's expiry noted (expiryNote).
func (j *Job) wrap(op, key string, err error) error {
	j.refreshLater(err)
	return wrap(op, key, j.expiryNote(err))
}

// expiryNote adds to err, a node's answer, that the job's token expired
// at Map.Expires, when that time has passed and err is an answer an
// expired job gets: not found (its values were dropped when it ended but
// those put with Persist), revoked, unknown job or bad token. A node that
// said so itself ("the job's token expired at ...") is left as it is; so
// is every other error. The code is unchanged (errors.Is still matches
// it); only the text says why: "key not found" alone read as a missing
// key of a live job. A job deregistered before its expiry and asked after
// it gets the note too (its token's expiry did pass; its map does not
// say which came first).
func (j *Job) expiryNote(err error) error {
	if err == nil {
		return nil
	}
	m := j.snapshot()
	if m.Expires.IsZero() || time.Now().Before(m.Expires) || strings.Contains(err.Error(), "token expired at") {
		return err
	}
	if !errors.Is(err, wire.ErrNotFound) && !errors.Is(err, wire.ErrRevoked) && !errors.Is(err, wire.ErrUnknownJob) && !errors.Is(err, wire.ErrBadToken) {
		return err
	}
	return fmt.Errorf("%w (job %s's token expired at %s: the job has ended, and only its values put with persist remain, read-only)",
		err, m.Job, m.Expires.UTC().Format(time.RFC3339))
}

// Get returns the value under key in memory the caller owns.
func (j *Job) Get(ctx context.Context, key string, opts ...GetOption) ([]byte, error) {
	return j.GetInto(ctx, key, nil, opts...)
}

// maxReadRetries bounds how often a get starts over because the object was
// replaced while its chunks were being read.
const maxReadRetries = 16

// errKeptChanging answers a get whose key was replaced under each of its
// maxReadRetries+1 reads, the last of version ver failing with err: the
// value is not corrupt, it changes faster than it is read (wire.ErrConflict).
// Before, it answered ErrCorrupt: a new user's readers of a 30 MiB key that
// two writers kept replacing read "corrupt" 9 times in 726.
func errKeptChanging(ver uint64, err error) error {
	return fmt.Errorf("%w: the value was replaced each of the %d times it was read (the last, version %016x: %v); read it again, or read it when its writers pause",
		wire.ErrConflict, maxReadRetries+1, ver, err)
}

// GetInto is Get reading into dst when the value fits its capacity (the
// result then aliases dst), so a caller that knows sizes allocates nothing.
// A get returns one whole version of the value: if the object is replaced
// while its chunks are read, the get starts over with the new version.
func (j *Job) GetInto(ctx context.Context, key string, dst []byte, opts ...GetOption) ([]byte, error) {
	if err := checkName(key); err != nil {
		return nil, err
	}
	var o getOpts
	for _, f := range opts {
		f(&o)
	}
	out, _, err := j.getInto(ctx, key, dst, o.flags)
	return out, j.wrap("get", key, err)
}

// getInto reads the value under key and, with wire.FlagVersion, returns
// its version. With FlagDeleteAfterRead the node deletes a one-record value
// as it reads it, and a chunked object is deleted (if still that version)
// after all its chunks have been read.
func (j *Job) getInto(ctx context.Context, key string, dst []byte, flags uint16) ([]byte, uint64, error) {
	var last uint64
	for try := 0; ; try++ {
		r, err := j.getRecord(ctx, key, dst, flags)
		if err != nil || r.Flags&wire.FlagManifest == 0 {
			return r.Payload, r.Meta.Version, j.lostErr([]byte(key), 0, err)
		}
		m, err := wire.DecodeManifest(r.Payload)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		if err := j.plausible(ctx, m); err != nil {
			return nil, 0, err
		}
		if m.Size > maxObjectAlloc && int64(cap(dst)) < m.Size {
			return nil, 0, fmt.Errorf("%w: manifest of version %016x claims %d bytes, more than a get can hold in memory (%d); read it with NewReader", ErrCorrupt, m.Version, m.Size, int64(maxObjectAlloc))
		}
		out := dst[:0]
		if int64(cap(out)) < m.Size {
			out = make([]byte, m.Size)
		}
		out = out[:m.Size]
		err = j.getChunks(ctx, key, m, out)
		lost := errors.Is(err, wire.ErrLost)
		switch {
		case err == nil && flags&wire.FlagDeleteAfterRead != 0:
			switch derr := j.deleteVersion(ctx, key, m.Version); {
			case derr == nil:
				return out, m.Version, nil
			case !consumed(derr) || try == maxReadRetries:
				return nil, 0, fmt.Errorf("delete-after-read of version %016x: %w", m.Version, derr)
			}
			// Another reader took this version first, or a writer
			// replaced it: read the key again.
			continue
		case err == nil:
			return out, m.Version, nil
		case !lost && !errors.Is(err, wire.ErrNotFound):
			return nil, 0, err
		case lost && (m.Version == last || try == maxReadRetries):
			return nil, 0, err // the same version again: its chunk is lost
		case m.Version == last:
			return nil, 0, fmt.Errorf("%w: version %016x: %v", ErrCorrupt, m.Version, err)
		case try == maxReadRetries:
			return nil, 0, errKeptChanging(m.Version, err)
		}
		last = m.Version // replaced or deleted meanwhile (or a chunk lost): read the key again
	}
}

// getRecord reads the record under key (a value, or a chunked object's
// manifest) into dst when it fits. With FlagDeleteAfterRead the get
// changes the key (the node deletes a one-record value as it reads it), so
// it is fenced as a delete is (fence.go): it waits for the Job's calls
// given up on the key, and, given up itself, runs to its end behind a
// fence, its reply in a buffer of its own, since dst is the caller's again
// once it has returned. Before, a cancelled delete-after-read could delete
// the value of the Job's next acknowledged put (a hostile trial: 48 of 204
// rounds).
func (j *Job) getRecord(ctx context.Context, key string, dst []byte, flags uint16) (client.Reply, error) {
	if flags&wire.FlagDeleteAfterRead == 0 {
		return j.do(ctx, wire.OpGet, flags, []byte(key), 0, nil, dst[:cap(dst)])
	}
	if err := j.fences.await(ctx, key, false); err != nil {
		return client.Reply{}, err
	}
	var r client.Reply
	err := j.finish(ctx, key, false, func(ctx context.Context) error {
		var err error
		r, err = j.do(ctx, wire.OpGet, flags, []byte(key), 0, nil, nil)
		return err
	})
	if err != nil {
		return client.Reply{}, err // r is the call's until it ends
	}
	if len(r.Payload) <= cap(dst) {
		r.Payload = append(dst[:0], r.Payload...)
	}
	return r, nil
}

// trustedSize is the largest object a get allocates for on its manifest's
// word alone; past it the job's nodes must hold at least the bytes it
// claims, so that a forged manifest cannot make a reader allocate more than
// the job could have stored.
const trustedSize = 256 << 20

// maxObjectAlloc is the largest object a get allocates for at all: past
// it make panics ("len out of range") whatever the nodes say, and a
// manifest and a usage answer from one hostile node made Get panic (a
// hostile trial: a manifest of 2^50 bytes).
const maxObjectAlloc = 1 << 46

// plausible checks a large manifest's size against the job's stored bytes.
func (j *Job) plausible(ctx context.Context, m wire.Manifest) error {
	if m.Size <= trustedSize {
		return nil
	}
	stored, err := j.Usage(ctx)
	if err != nil {
		return err
	}
	if stored < m.Size {
		return fmt.Errorf("%w: manifest of version %016x claims %d bytes, the job holds %d", ErrCorrupt, m.Version, m.Size, stored)
	}
	return nil
}

// Usage returns the bytes the job's values take on the nodes of its map
// (values, chunks and manifests), summed over one usage request to each
// live node (wire.OpUsage). A node the map marks dead (Map.Dead) is not
// asked, and what it holds is not counted; `pocket job show` says so.
// For a deregistered job (after Deregister, or opened from a credential
// of one) it is the bytes of its persisted values, a node that kept none
// counting 0. Errors are those of a fan-out: a node that cannot be
// reached fails the call.
func (j *Job) Usage(ctx context.Context) (int64, error) {
	replies, err := j.fanOut(ctx, wire.OpUsage, 0, wire.Request{})
	if err != nil {
		return 0, err
	}
	var stored int64
	for _, r := range replies {
		if r.Meta.Size > wire.MaxNodeBytes {
			// The client refuses a negative size; one node past its
			// bound would overflow the sum (a hostile trial's -5 came
			// back as the job's usage).
			return 0, wire.Errorf(wire.CodeMalformed, "a node's usage of the job, %d bytes, is over one node's bound of %d", r.Meta.Size, int64(wire.MaxNodeBytes))
		}
		stored += r.Meta.Size
	}
	return stored, nil
}

// getChunks reads chunks 1..n of a manifest into out in parallel.
func (j *Job) getChunks(ctx context.Context, key string, m wire.Manifest, out []byte) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(j.s.cfg.Parallel)
	for i := 1; i <= m.Count && gctx.Err() == nil; i++ {
		lo, hi := m.ChunkBounds(i)
		// Capped at hi: the client reads a reply that fits its dst's
		// capacity into it, and a chunk reply longer than its chunk
		// wrote the next chunk's bytes (racing that chunk's reader) or,
		// for the last, the caller's buffer past the value.
		part := out[lo:hi:hi]
		g.Go(func() error { return j.getChunk(gctx, key, m.Version, i, part) })
	}
	// The loop stops once a chunk failed or ctx ended: a manifest of
	// 4 Mi one-byte chunks kept a get with a 2 s context 13.5 s in it.
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// getChunk reads chunk i of version ver into part, which it must fill
// exactly.
func (j *Job) getChunk(ctx context.Context, key string, ver uint64, i int, part []byte) error {
	ck := wire.AppendChunkKey(nil, []byte(key), ver, i)
	r, err := j.do(ctx, wire.OpGet, 0, ck, uint32(i), nil, part)
	if err != nil {
		return j.lostErr(ck, uint32(i), err)
	}
	if len(r.Payload) != len(part) || (len(part) > 0 && &r.Payload[0] != &part[0]) {
		return fmt.Errorf("%w: chunk %d is %d bytes, want %d", ErrCorrupt, i, len(r.Payload), len(part))
	}
	return nil
}

// deleteVersion deletes key if it still holds version ver (what a
// delete-after-read read), and then that version's chunks; a newer value
// stays. It returns nil only when this call removed ver: of readers racing
// to delete-after-read one version, exactly one gets nil, the others an
// error consumed reports (wire.ErrNotFound: taken by another reader or
// deleted; wire.ErrConflict: replaced by a newer value), so each hands the
// value out only if it won.
func (j *Job) deleteVersion(ctx context.Context, key string, ver uint64) error {
	if err := j.fences.await(ctx, key, false); err != nil {
		return err
	}
	return j.finish(ctx, key, false, func(ctx context.Context) error {
		r, _, err := j.doReq(ctx, wire.OpDelete, wire.FlagIfVersion, []byte(key), 0, reqExtra{version: ver}, nil, nil)
		if err == nil {
			j.dropReplaced(r.Meta.Version)
		}
		return err
	})
}

// consumed reports whether a delete-after-read's delete (deleteVersion)
// found its version gone: taken by another reader, deleted or replaced.
func consumed(err error) bool {
	return errors.Is(err, wire.ErrNotFound) || errors.Is(err, wire.ErrConflict)
}

// Info describes a stored value.
type Info struct {
	Size    int64
	Persist bool
}

// Stat returns a value's size without reading it.
func (j *Job) Stat(ctx context.Context, key string) (Info, error) {
	if err := checkName(key); err != nil {
		return Info{}, err
	}
	r, err := j.do(ctx, wire.OpStat, 0, []byte(key), 0, nil, nil)
	if err != nil {
		return Info{}, j.wrap("stat", key, j.lostErr([]byte(key), 0, err))
	}
	return Info{Size: r.Meta.Size, Persist: uint16(r.Meta.Flags)&wire.FlagPersist != 0}, nil
}

// Exists reports whether key holds a value: false for a value lost with
// its node (which Stat and Get answer with ErrLost) too.
func (j *Job) Exists(ctx context.Context, key string) (bool, error) {
	_, err := j.Stat(ctx, key)
	if errors.Is(err, wire.ErrNotFound) || errors.Is(err, wire.ErrLost) {
		return false, nil
	}
	return err == nil, err
}

// Delete removes one value and, for a chunked object, its chunks;
// ErrNotFound if there was none, ErrLost if its owner left the map dead
// (the value, if there was one, is gone; Get and Stat answer the same).
func (j *Job) Delete(ctx context.Context, key string) error {
	if err := checkName(key); err != nil {
		return err
	}
	return j.wrap("delete", key, j.lostErr([]byte(key), 0, j.deleteKey(ctx, key)))
}

// deleteKey is Delete's request: "not found" for a key a lost node owned
// too (RemoveAll counts it as nothing there, as it does the lost node's
// names under it).
func (j *Job) deleteKey(ctx context.Context, key string) error {
	if err := j.fences.await(ctx, key, false); err != nil {
		return err
	}
	return j.finish(ctx, key, false, func(ctx context.Context) error {
		r, err := j.do(ctx, wire.OpDelete, 0, []byte(key), 0, nil, nil)
		if err == nil {
			j.dropReplaced(r.Meta.Version)
		}
		return err
	})
}
