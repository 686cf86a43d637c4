package pocket

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/pocketstore/pocket/wire"
	"golang.org/x/sync/errgroup"
)

func isNotFound(err error) bool { return errors.Is(err, wire.ErrNotFound) }

// Writer streams a value into the store chunk by chunk, several chunks in
// flight at once; the value becomes visible, whole, at Close. A writer
// abandoned without Close, or whose Close fails, leaves nothing visible and
// its chunks are dropped (or, if its process died, reclaimed by the nodes'
// chunk lease). It is not safe for concurrent use.
type Writer struct {
	j     *Job
	ctx   context.Context
	key   string
	flags uint16
	buf   []byte
	n     int   // chunks sent
	size  int64 // bytes accepted
	obj   *objectWrite
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
	return &Writer{j: j, ctx: ctx, key: key, flags: o.flags, obj: j.newObject(key, o.flags), g: g, gctx: gctx}, nil
}

// Write buffers p and sends each full chunk. Once a chunk sent in the
// background has failed, or the writer's context has ended, it returns
// that error (as do every later Write and Close) and drops the chunks
// sent; nothing becomes visible.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	cs := int(w.j.s.cfg.ChunkSize)
	written := 0
	for len(p) > 0 {
		if err := w.failed(); err != nil {
			return written, err
		}
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

// failed is the writer's error once a chunk sent in the background has
// failed or its context has ended, nil before: it waits for the chunks
// under way, drops those sent, and keeps the error for every later call.
// Before, Write took bytes for ever after a failure, which only Close
// reported: `pocket put JOB KEY /dev/zero` ran for more than 10 minutes
// past a full tier and through SIGINT and SIGTERM (a new user's trial).
func (w *Writer) failed() error {
	if w.gctx.Err() == nil {
		return nil
	}
	err := w.g.Wait()
	if err == nil {
		err = cmp.Or(w.ctx.Err(), context.Cause(w.gctx))
	}
	if w.n > 0 {
		w.obj.abortUnconfirmed()
	}
	w.err = w.j.wrap("put", w.key, recordNote(err, "a chunk", min(w.j.s.cfg.ChunkSize, w.size), w.j.s.cfg.ChunkSize))
	return w.err
}

// flushChunk sends the buffered chunk as chunk n+1 in the background.
func (w *Writer) flushChunk() {
	w.n++
	i, part := w.n, w.buf
	w.buf = nil
	w.g.Go(func() error { return w.obj.putChunk(w.gctx, i, part) })
}

// Close sends the last chunk and publishes the value.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	w.err = errors.New("pocket: writer closed")
	if w.n == 0 {
		_ = w.g.Wait()
		err := w.j.putSmall(w.ctx, w.key, w.flags, w.buf)
		return w.j.wrap("put", w.key, recordNote(err, "the value whole", int64(len(w.buf)), w.j.s.cfg.ChunkSize))
	}
	if len(w.buf) > 0 {
		w.flushChunk()
	}
	if err := w.g.Wait(); err != nil {
		w.obj.abortUnconfirmed()
		return w.j.wrap("put", w.key, recordNote(err, "a chunk", min(w.j.s.cfg.ChunkSize, w.size), w.j.s.cfg.ChunkSize))
	}
	m := wire.Manifest{Version: w.obj.ver, Size: w.size, Chunk: w.j.s.cfg.ChunkSize, Count: w.n}
	return w.j.wrap("put", w.key, w.obj.commit(w.ctx, m))
}

// Abort drops what the writer sent; nothing becomes visible.
func (w *Writer) Abort() {
	if w.err != nil {
		return
	}
	w.err = errors.New("pocket: writer aborted")
	_ = w.g.Wait()
	if w.n > 0 {
		w.obj.abortUnconfirmed()
	}
}

// Reader streams a value out of the store, fetching the next chunk while
// the caller reads the current one. Every byte it returns belongs to one
// version of the value; if the object is replaced mid-stream, Read fails
// with an error matching ErrConflict instead of mixing versions.
type Reader struct {
	j     *Job
	ctx   context.Context
	key   string
	m     wire.Manifest // Count 0: a value of one record, in cur
	cur   []byte
	next  int // next chunk to fetch
	ahead chan fetched
	read  int64 // bytes returned
	err   error // the first error Read returned, returned again by every later Read
}

type fetched struct {
	b   []byte
	err error
}

// NewReader opens key for streaming. DeleteAfterRead is not an option of
// a stream: use GetFile or Get, which delete only after a whole read.
func (j *Job) NewReader(ctx context.Context, key string, opts ...GetOption) (*Reader, error) {
	if err := checkName(key); err != nil {
		return nil, err
	}
	var o getOpts
	for _, f := range opts {
		f(&o)
	}
	if o.flags&wire.FlagDeleteAfterRead != 0 {
		return nil, fmt.Errorf("pocket: get %q: delete-after-read needs a whole read (Get or GetFile), not a stream", key)
	}
	r0, err := j.do(ctx, wire.OpGet, wire.FlagVersion, []byte(key), 0, nil, nil)
	if err != nil {
		return nil, j.wrap("get", key, j.lostErr([]byte(key), 0, err))
	}
	rd := &Reader{j: j, ctx: ctx, key: key}
	if r0.Flags&wire.FlagManifest == 0 {
		rd.cur, rd.m.Version = r0.Payload, r0.Meta.Version
		return rd, nil
	}
	if rd.m, err = wire.DecodeManifest(r0.Payload); err != nil {
		return nil, j.wrap("get", key, fmt.Errorf("%w: %v", ErrCorrupt, err))
	}
	rd.next = 1
	rd.prefetch()
	return rd, nil
}

func (r *Reader) prefetch() {
	if r.next == 0 || r.next > r.m.Count {
		r.ahead = nil
		return
	}
	i := r.next
	r.next++
	ch := make(chan fetched, 1)
	r.ahead = ch
	lo, hi := r.m.ChunkBounds(i)
	go func() {
		buf := make([]byte, hi-lo)
		err := r.j.getChunk(r.ctx, r.key, r.m.Version, i, buf)
		ch <- fetched{buf, err}
	}()
}

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		// A stream that failed stays failed: answering io.EOF now
		// would end a value cut short like a whole one.
		return 0, r.err
	}
	for len(r.cur) == 0 {
		if r.ahead == nil {
			return 0, io.EOF
		}
		f := <-r.ahead
		if f.err != nil {
			r.ahead = nil
			r.err = r.j.wrap("get", r.key, r.chunkErr(f.err))
			return 0, r.err
		}
		r.cur = f.b
		r.prefetch()
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	r.read += int64(n)
	return n, nil
}

// chunkErr explains a chunk that could not be read: the object was
// deleted (ErrNotFound: by a delete, or taken by another delete-after-read
// reader), replaced (ErrConflict), its chunk's node left the map dead
// (ErrLost), or its chunk is gone otherwise (ErrCorrupt).
func (r *Reader) chunkErr(err error) error {
	lost := errors.Is(err, wire.ErrLost)
	if !lost && !errors.Is(err, wire.ErrNotFound) {
		return err
	}
	st, serr := r.j.do(r.ctx, wire.OpStat, 0, []byte(r.key), 0, nil, nil)
	if serr = r.j.lostErr([]byte(r.key), 0, serr); errors.Is(serr, wire.ErrLost) {
		return serr // the manifest's node is gone too
	}
	switch {
	case errors.Is(serr, wire.ErrNotFound):
		return fmt.Errorf("%w: deleted (or taken by another delete-after-read reader) while being read", ErrNotFound)
	case serr == nil && st.Meta.Version != r.m.Version:
		return fmt.Errorf("%w: replaced while being read", ErrConflict)
	case serr != nil && !lost:
		// The look failed (the reader's context ended, or the node could
		// not be reached): whether the object was deleted or replaced
		// meanwhile is not known, and nothing says it is corrupt.
		return fmt.Errorf("chunk of version %016x: %v; looking at the object: %w", r.m.Version, err, serr)
	}
	if lost {
		return err
	}
	return fmt.Errorf("%w: version %016x: %v", ErrCorrupt, r.m.Version, err)
}

// Size is the value's total size.
func (r *Reader) Size() int64 {
	if r.m.Count == 0 {
		return r.read + int64(len(r.cur))
	}
	return r.m.Size
}

// version is the version the reader reads.
func (r *Reader) version() uint64 { return r.m.Version }

// Close drains a pending prefetch.
func (r *Reader) Close() error {
	if r.ahead != nil {
		<-r.ahead
		r.ahead = nil
	}
	return nil
}

// PutFile uploads a local file to key. A failed upload changes nothing.
// An upload that lost a race for space (spacerace.go) reads the file again
// from its start and tries again, as Put does; one from a file that
// cannot seek (a pipe) fails with the refusal.
func (j *Job) PutFile(ctx context.Context, src, key string, opts ...PutOption) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	for try := 0; ; try++ {
		w, err := j.NewWriter(ctx, key, opts...)
		if err != nil {
			return err
		}
		if _, err := io.Copy(w, f); err != nil && w.err == nil {
			w.Abort() // the file's read failed
			return err
		}
		err = w.Close() // the writer's error, when it failed
		if err == nil || w.n == 0 || !againAfterSpaceRace(ctx, w.obj, err, try) {
			return err
		}
		if _, serr := f.Seek(0, io.SeekStart); serr != nil {
			return err
		}
	}
}

// GetFile downloads key into a local file, replacing it only once the whole
// value has arrived (through a temporary file in the same directory): a
// failed download leaves dst as it was. With DeleteAfterRead the version
// read is deleted once all of it is in the temporary file, just before the
// rename; a dst that names a directory fails first, and a rename that fails
// after the delete leaves the temporary file, the value's only copy, in
// place and names it in the error.
//
// Of readers racing to delete-after-read one value, exactly one succeeds;
// the others read the key again (below), and answer an error wrapping
// wire.ErrNotFound, leaving dst as it was, once it is gone.
//
// A value replaced while it is read, or (with DeleteAfterRead) taken or
// replaced before this reader deleted it, is read again, as Get reads it
// again, up to maxReadRetries times: dst then gets the version read last.
// Before, GetFile (and so `pocket get KEY FILE`) failed "replaced while
// being read" where Get went on (a new user's trial: 28 of 100 CLI gets
// of a key four writers kept replacing).
func (j *Job) GetFile(ctx context.Context, key, dst string, opts ...GetOption) error {
	var o getOpts
	for _, f := range opts {
		f(&o)
	}
	if err := replaceable(dst); err != nil {
		return err // before anything is read
	}
	for try := 0; ; try++ {
		again, err := j.getFileOnce(ctx, key, dst, o)
		if err == nil || !again || try == maxReadRetries {
			return err
		}
	}
}

// getFileOnce is one read of GetFile; again reports whether its error
// is one that reading the key again may end: the value was replaced while
// it was read, or another reader or a writer came first to the version a
// delete-after-read read.
func (j *Job) getFileOnce(ctx context.Context, key, dst string, o getOpts) (again bool, err error) {
	r, err := j.NewReader(ctx, key)
	if err != nil {
		return false, err
	}
	defer r.Close()
	consumedFirst := false
	err = writeFileAtomic(dst, r, func() error {
		if o.flags&wire.FlagDeleteAfterRead == 0 {
			return nil
		}
		err := j.consumeRead(ctx, key, r.version())
		consumedFirst = consumed(err)
		return err
	})
	return consumedFirst || errors.Is(err, wire.ErrConflict), err
}

// GetTo streams the value under key into w and returns the bytes written.
// A w with a Flush method (a bufio.Writer) is flushed once all of it is
// written. With DeleteAfterRead the value (the version read) is deleted
// only once all of it has been written to w, and w flushed, without error:
// before, `pocket get --delete-after-read KEY -`, whose output is held
// back, deleted the value and then failed to write it (a new user's
// trial: stdout on a full device, or a closed pipe). If another reader
// deleted it first (or a writer replaced it), GetTo answers an error
// wrapping wire.ErrNotFound (or ErrConflict): what it wrote to w was not
// its to take. Unlike Get and GetFile, GetTo does not read a value
// replaced while it is read again: what it wrote to w cannot be taken
// back; it answers ErrConflict.
func (j *Job) GetTo(ctx context.Context, key string, w io.Writer, opts ...GetOption) (int64, error) {
	var n int64
	err := j.getWith(ctx, key, opts, func(r io.Reader) (err error) {
		if n, err = io.Copy(w, r); err != nil {
			return err
		}
		if f, ok := w.(interface{ Flush() error }); ok {
			err = f.Flush() // before a delete-after-read takes the value
		}
		return err
	})
	return n, err
}

// getWith streams key's value to consume and, with DeleteAfterRead, deletes
// the version read if consume succeeded (consumeRead).
func (j *Job) getWith(ctx context.Context, key string, opts []GetOption, consume func(io.Reader) error) error {
	var o getOpts
	for _, f := range opts {
		f(&o)
	}
	r, err := j.NewReader(ctx, key)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := consume(r); err != nil {
		return err
	}
	if o.flags&wire.FlagDeleteAfterRead != 0 {
		return j.consumeRead(ctx, key, r.version())
	}
	return nil
}

// consumeRead ends a streamed delete-after-read: it deletes the version
// read, and answers an error when this reader did not delete it
// (deleteVersion: another reader came first, or a writer replaced it).
func (j *Job) consumeRead(ctx context.Context, key string, ver uint64) error {
	if err := j.deleteVersion(ctx, key, ver); err != nil {
		return fmt.Errorf("pocket: get %q: delete-after-read of version %016x: %w", key, ver, err)
	}
	return nil
}

// writeFileAtomic writes what r yields to dst through a temporary file,
// renamed over dst once complete and once commit (called just before the
// rename) succeeds. A dst the rename cannot replace (a directory) fails
// before commit. Once commit has succeeded (with DeleteAfterRead, the
// value is gone from the store), the temporary file is the value's only
// copy: a rename that fails then leaves it in place, and the error names
// it. The file gets dst's mode when dst exists, else os.Create's (0666
// less the umask); before, CreateTemp's 0600 replaced a 0644 file's mode
// (a new user's trial).
func writeFileAtomic(dst string, r io.Reader, commit func() error) error {
	tmp, err := createPart(dst)
	if err != nil {
		// Named by dst, the caller's path, not the temporary file's.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("pocket: cannot write %s: %w", dst, err)
	}
	_, err = io.Copy(tmp, r)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = replaceable(dst)
	}
	if err == nil {
		err = commit()
		if err == nil {
			if err = os.Rename(tmp.Name(), dst); err != nil {
				return fmt.Errorf("pocket: the value read is in %s (a delete-after-read took it from the store): %w", tmp.Name(), err)
			}
			return nil
		}
	}
	_ = os.Remove(tmp.Name())
	return err
}

// createPart creates the temporary file a download of dst goes to, beside
// it: mode 0666 less the umask, or dst's own mode when dst is a file.
func createPart(dst string) (*os.File, error) {
	var f *os.File
	var err error
	for range 10000 {
		name := filepath.Join(filepath.Dir(dst), fmt.Sprintf(".%s.part-%d", filepath.Base(dst), rand.Uint32()))
		if f, err = os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666); !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	if fi, serr := os.Stat(dst); serr == nil && fi.Mode().IsRegular() {
		if err := f.Chmod(fi.Mode().Perm()); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, err
		}
	}
	return f, nil
}

// replaceable reports an error when a rename cannot replace dst: dst names
// a directory.
//
// It also reports one when dst is, or links to, something other than a
// regular file or a directory (a device, a pipe, a socket): the rename
// would replace it with a regular file. A new user's download to a device
// node replaced it, and one to /dev/null as root would have broken it for
// the whole machine; to write into such a file, get to stdout (pocket get
// KEY -) or use GetTo.
func replaceable(dst string) error {
	if fi, err := os.Lstat(dst); err == nil && fi.IsDir() {
		return fmt.Errorf("pocket: %s is a directory: a download replaces a file", dst)
	}
	if fi, err := os.Stat(dst); err == nil && !fi.Mode().IsRegular() && !fi.IsDir() {
		return fmt.Errorf("pocket: %s is not a regular file (%v): a download replaces a regular file; to write into it, get the value to stdout (pocket get JOBID KEY -) or with GetTo", dst, fi.Mode().Type())
	}
	return nil
}
