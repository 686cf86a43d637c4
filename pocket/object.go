package pocket

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/pocketstore/pocket/wire"
	"golang.org/x/sync/errgroup"
)

// Errors of the SDK. Node errors come back as *wire.Error and match the
// wire sentinels (wire.ErrNotFound, wire.ErrNoSpace, ...) with errors.Is;
// these aliases spare callers the wire import.
var (
	ErrNotFound = wire.ErrNotFound
	ErrNoSpace  = wire.ErrNoSpace
	// ErrUnavailable: the node holding the data cannot be reached.
	ErrUnavailable = wire.ErrUnavailable
	// ErrBadName: an empty name, or one containing the reserved byte 0x00.
	ErrBadName = errors.New("pocket: bad name")
	// ErrCorrupt: a manifest or chunk does not match what was written.
	ErrCorrupt = errors.New("pocket: corrupt object")
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
func DeleteAfterRead() GetOption { return func(o *getOpts) { o.flags |= wire.FlagDeleteAfterRead } }

func checkName(key string) error {
	if key == "" || len(key) > wire.DefaultMaxKeyLen-12 || bytes.IndexByte([]byte(key), 0) >= 0 {
		return fmt.Errorf("%w: %q", ErrBadName, key)
	}
	return nil
}

// chunkKey names chunk i (>= 1) of key.
func chunkKey(key string, i int) []byte {
	return strconv.AppendInt(append([]byte(key), 0), int64(i), 10)
}

const manifestLen = 20

type manifest struct {
	size  int64
	chunk int64
	count int
}

func (m manifest) encode() []byte {
	b := make([]byte, manifestLen)
	copy(b, "PKM1")
	binary.LittleEndian.PutUint64(b[4:], uint64(m.size))
	binary.LittleEndian.PutUint32(b[12:], uint32(m.chunk))
	binary.LittleEndian.PutUint32(b[16:], uint32(m.count))
	return b
}

func decodeManifest(b []byte) (manifest, error) {
	if len(b) != manifestLen || string(b[:4]) != "PKM1" {
		return manifest{}, fmt.Errorf("%w: bad manifest", ErrCorrupt)
	}
	m := manifest{
		size:  int64(binary.LittleEndian.Uint64(b[4:])),
		chunk: int64(binary.LittleEndian.Uint32(b[12:])),
		count: int(binary.LittleEndian.Uint32(b[16:])),
	}
	if m.size < 0 || m.chunk <= 0 || int64(m.count) != (m.size+m.chunk-1)/m.chunk {
		return manifest{}, fmt.Errorf("%w: inconsistent manifest", ErrCorrupt)
	}
	return m, nil
}

// Put stores value under key, replacing any older value (Pocket refused to
// overwrite; we replace, as a file system does).
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
		_, err := j.do(ctx, wire.OpPut, o.flags, []byte(key), 0, value, nil)
		return wrap("put", key, err)
	}
	n := int((int64(len(value)) + cs - 1) / cs)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(j.s.cfg.Parallel)
	for i := 1; i <= n; i++ {
		lo := int64(i-1) * cs
		part := value[lo:min(lo+cs, int64(len(value)))]
		g.Go(func() error {
			_, err := j.do(gctx, wire.OpPut, o.flags, chunkKey(key, i), uint32(i), part, nil)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return wrap("put", key, err)
	}
	m := manifest{size: int64(len(value)), chunk: cs, count: n}
	_, err := j.do(ctx, wire.OpPut, o.flags|wire.FlagManifest, []byte(key), 0, m.encode(), nil)
	return wrap("put", key, err)
}

func wrap(op, key string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("pocket: %s %q: %w", op, key, err)
}

// Get returns the value under key in memory the caller owns.
func (j *Job) Get(ctx context.Context, key string, opts ...GetOption) ([]byte, error) {
	return j.GetInto(ctx, key, nil, opts...)
}

// GetInto is Get reading into dst when the value fits its capacity (the
// result then aliases dst), so a caller that knows sizes allocates nothing.
func (j *Job) GetInto(ctx context.Context, key string, dst []byte, opts ...GetOption) ([]byte, error) {
	if err := checkName(key); err != nil {
		return nil, err
	}
	var o getOpts
	for _, f := range opts {
		f(&o)
	}
	r, err := j.do(ctx, wire.OpGet, o.flags, []byte(key), 0, nil, dst[:cap(dst)])
	if err != nil {
		return nil, wrap("get", key, err)
	}
	if r.Flags&wire.FlagManifest == 0 {
		return r.Payload, nil
	}
	m, err := decodeManifest(r.Payload)
	if err != nil {
		return nil, wrap("get", key, err)
	}
	out := dst[:0]
	if int64(cap(out)) < m.size {
		out = make([]byte, m.size)
	}
	out = out[:m.size]
	return out, wrap("get", key, j.getChunks(ctx, key, m, o.flags, out))
}

// getChunks reads chunks 1..n of a manifest into out in parallel.
func (j *Job) getChunks(ctx context.Context, key string, m manifest, flags uint16, out []byte) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(j.s.cfg.Parallel)
	for i := 1; i <= m.count; i++ {
		lo := int64(i-1) * m.chunk
		part := out[lo:min(lo+m.chunk, m.size)]
		g.Go(func() error {
			r, err := j.do(gctx, wire.OpGet, flags, chunkKey(key, i), uint32(i), nil, part)
			if err != nil {
				return err
			}
			if len(r.Payload) != len(part) || (len(part) > 0 && &r.Payload[0] != &part[0]) {
				return fmt.Errorf("%w: chunk %d is %d bytes, want %d", ErrCorrupt, i, len(r.Payload), len(part))
			}
			return nil
		})
	}
	return g.Wait()
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
		return Info{}, wrap("stat", key, err)
	}
	info := Info{Size: r.Meta.Size, Persist: uint16(r.Meta.Flags)&wire.FlagPersist != 0}
	if uint16(r.Meta.Flags)&wire.FlagManifest != 0 {
		g, err := j.do(ctx, wire.OpGet, 0, []byte(key), 0, nil, nil)
		if err != nil {
			return Info{}, wrap("stat", key, err)
		}
		m, err := decodeManifest(g.Payload)
		if err != nil {
			return Info{}, wrap("stat", key, err)
		}
		info.Size = m.size
	}
	return info, nil
}

// Exists reports whether key holds a value.
func (j *Job) Exists(ctx context.Context, key string) (bool, error) {
	_, err := j.Stat(ctx, key)
	if errors.Is(err, wire.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Delete removes one value and its chunks; ErrNotFound if there was none.
func (j *Job) Delete(ctx context.Context, key string) error {
	if err := checkName(key); err != nil {
		return err
	}
	// Chunks first, so a failure leaves a readable manifest at worst
	// pointing at missing chunks rather than orphans no one can find.
	if _, err := j.fanOut(ctx, wire.OpDelete, wire.FlagPrefix, wire.Request{Key: append([]byte(key), 0)}); err != nil {
		return wrap("delete", key, err)
	}
	_, err := j.do(ctx, wire.OpDelete, 0, []byte(key), 0, nil, nil)
	return wrap("delete", key, err)
}
