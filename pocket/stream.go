package pocket

import (
	"context"
	"errors"
	"io"
	"os"

	"github.com/pocketstore/pocket/wire"
	"golang.org/x/sync/errgroup"
)

func isNotFound(err error) bool { return errors.Is(err, wire.ErrNotFound) }

// Writer streams a value into the store chunk by chunk, several chunks in
// flight at once; the value becomes visible at Close. It is not safe for
// concurrent use.
type Writer struct {
	j     *Job
	ctx   context.Context
	key   string
	flags uint16
	buf   []byte
	n     int   // chunks sent
	size  int64 // bytes accepted
	g     *errgroup.Group
	gctx  context.Context
	err   error
}

// NewWriter starts streaming a value to key.
func (j *Job) NewWriter(ctx context.Context, key string, opts ...PutOption) (*Writer, error) {
	if err := checkName(key); err != nil {
		return nil, err
	}
	var o putOpts
	for _, f := range opts {
		f(&o)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(j.s.cfg.Parallel)
	return &Writer{j: j, ctx: ctx, key: key, flags: o.flags, g: g, gctx: gctx}, nil
}

// Write buffers p and sends each full chunk.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	cs := int(w.j.s.cfg.ChunkSize)
	written := 0
	for len(p) > 0 {
		if w.buf == nil {
			w.buf = make([]byte, 0, cs)
		}
		k := min(cs-len(w.buf), len(p))
		w.buf = append(w.buf, p[:k]...)
		p, written, w.size = p[k:], written+k, w.size+int64(k)
		if len(w.buf) == cs {
			w.flushChunk()
		}
	}
	return written, nil
}

// flushChunk sends the buffered chunk as chunk n+1 in the background.
func (w *Writer) flushChunk() {
	w.n++
	i, part := w.n, w.buf
	w.buf = nil
	w.g.Go(func() error {
		_, err := w.j.do(w.gctx, wire.OpPut, w.flags, chunkKey(w.key, i), uint32(i), part, nil)
		return err
	})
}

// Close sends the last chunk and publishes the value.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	w.err = errors.New("pocket: writer closed")
	if w.n == 0 {
		_ = w.g.Wait()
		_, err := w.j.do(w.ctx, wire.OpPut, w.flags, []byte(w.key), 0, w.buf, nil)
		return wrap("put", w.key, err)
	}
	if len(w.buf) > 0 {
		w.flushChunk()
	}
	if err := w.g.Wait(); err != nil {
		return wrap("put", w.key, err)
	}
	m := manifest{size: w.size, chunk: w.j.s.cfg.ChunkSize, count: w.n}
	_, err := w.j.do(w.ctx, wire.OpPut, w.flags|wire.FlagManifest, []byte(w.key), 0, m.encode(), nil)
	return wrap("put", w.key, err)
}

// Reader streams a value out of the store, fetching the next chunk while
// the caller reads the current one.
type Reader struct {
	j     *Job
	ctx   context.Context
	key   string
	flags uint16
	m     manifest
	cur   []byte
	next  int // next chunk to fetch
	ahead chan fetched
}

type fetched struct {
	b   []byte
	err error
}

// NewReader opens key for streaming.
func (j *Job) NewReader(ctx context.Context, key string, opts ...GetOption) (*Reader, error) {
	if err := checkName(key); err != nil {
		return nil, err
	}
	var o getOpts
	for _, f := range opts {
		f(&o)
	}
	r0, err := j.do(ctx, wire.OpGet, o.flags, []byte(key), 0, nil, nil)
	if err != nil {
		return nil, wrap("get", key, err)
	}
	rd := &Reader{j: j, ctx: ctx, key: key, flags: o.flags}
	if r0.Flags&wire.FlagManifest == 0 {
		rd.cur = r0.Payload
		return rd, nil
	}
	if rd.m, err = decodeManifest(r0.Payload); err != nil {
		return nil, wrap("get", key, err)
	}
	rd.next = 1
	rd.prefetch()
	return rd, nil
}

func (r *Reader) prefetch() {
	if r.next == 0 || r.next > r.m.count {
		r.ahead = nil
		return
	}
	i := r.next
	r.next++
	ch := make(chan fetched, 1)
	r.ahead = ch
	go func() {
		rep, err := r.j.do(r.ctx, wire.OpGet, r.flags, chunkKey(r.key, i), uint32(i), nil, nil)
		ch <- fetched{rep.Payload, err}
	}()
}

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.ahead == nil {
			return 0, io.EOF
		}
		f := <-r.ahead
		if f.err != nil {
			r.ahead = nil
			return 0, wrap("get", r.key, f.err)
		}
		r.cur = f.b
		r.prefetch()
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// Size is the value's total size.
func (r *Reader) Size() int64 {
	if r.m.count == 0 {
		return int64(len(r.cur))
	}
	return r.m.size
}

// Close drains a pending prefetch.
func (r *Reader) Close() error {
	if r.ahead != nil {
		<-r.ahead
		r.ahead = nil
	}
	return nil
}

// PutFile uploads a local file to key.
func (j *Job) PutFile(ctx context.Context, src, key string, opts ...PutOption) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	w, err := j.NewWriter(ctx, key, opts...)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, f); err != nil {
		return err
	}
	return w.Close()
}

// GetFile downloads key into a local file, replacing it.
func (j *Job) GetFile(ctx context.Context, key, dst string, opts ...GetOption) error {
	r, err := j.NewReader(ctx, key, opts...)
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
