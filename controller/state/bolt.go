package state

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// BoltFile is the name of the store's file inside its directory.
const BoltFile = "controller.db"

// Bucket and key names of the bolt layout (format version 1): bucket
// "jobs" maps a job id to its JSON Job, "nodes" a node address to its
// JSON Node, "profiles" a job name to its JSON Profile, and "meta" holds
// "format" (the decimal FormatVersion) and "meta" (the JSON Meta). A
// store written before profiles existed gets the "profiles" bucket when
// opened; a build before profiles ignores it (see FormatVersion).
var (
	bucketJobs     = []byte("jobs")
	bucketNodes    = []byte("nodes")
	bucketProfiles = []byte("profiles")
	bucketMeta     = []byte("meta")
	keyFormat      = []byte("format")
	keyMeta        = []byte("meta")
)

// Bolt is a Store in a bbolt file (BoltFile in a directory): one
// controller on one machine. Every Apply is one bolt read-write
// transaction, fsynced before it returns.
type Bolt struct {
	db   *bolt.DB
	path string
}

// OpenBolt opens (creating it, mode 0700, and the file, mode 0600, when
// missing) the store in dir. It fails when dir, a directory above it or
// the file may be changed by another user (CheckPrivateDir,
// CheckPrivateFile: another user's store could hand the controller jobs
// and nodes of their choosing); with a CorruptError when the file is not
// a whole bbolt store (truncated, overwritten) rather than crashing; with
// a FormatError when the store was written by a newer format version; and
// when another process holds the file open (after a one-second wait): two
// controllers on one directory would overwrite each other.
func OpenBolt(dir string) (*Bolt, error) {
	if dir == "" {
		return nil, errors.New("state: no directory for the controller's store")
	}
	if err := CheckParents(dir); err != nil {
		// Before anything is created.
		return nil, fmt.Errorf("state: %w, or give another --data-dir", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	path := filepath.Join(dir, BoltFile)
	if err := checkStoreFiles(dir, path); err != nil {
		return nil, err
	}
	if err := checkBoltSize(path); err != nil {
		return nil, err
	}
	db, err := openBolt(path)
	if err != nil {
		return nil, err
	}
	b := &Bolt{db: db, path: path}
	if err := guard(path, func() error { return db.Update(b.init) }); err != nil {
		db.Close()
		return nil, err
	}
	return b, nil
}

// openBolt is bolt.Open with its errors (and crashes) on a damaged file
// turned into a CorruptError.
func openBolt(path string) (*bolt.DB, error) {
	var db *bolt.DB
	err := guard(path, func() error {
		var err error
		db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
		return err
	})
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("state: %s is in use by another process (another controller on this --data-dir?)", path)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
		return nil, &CorruptError{Path: path, Reason: err.Error()}
	}
	var ce *CorruptError
	if errors.As(err, &ce) {
		return nil, err
	}
	return nil, fmt.Errorf("state: open %s: %w", path, err)
}

// CorruptError means the store's file is damaged (truncated, overwritten,
// or bbolt found it inconsistent): the controller cannot start on it.
type CorruptError struct {
	Path   string // the store's file
	Reason string // what is wrong with it
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("state: controller state in %s is corrupted (%s): move it aside to start empty, "+
		"or restore it from a copy (an older copy than the nodes ran on brings back ended jobs and older maps: README, Known limits)",
		e.Path, e.Reason)
}

// guard runs f, which reads the bbolt file at path, turning a panic (bbolt
// panics on inconsistent pages) or a memory fault in its mapping (a file
// shorter than bbolt believes) into a CorruptError.
func guard(path string, f func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			err = &CorruptError{Path: path, Reason: fmt.Sprint(r)}
		}
	}()
	return f()
}

// bboltMagic is the magic number of a bbolt meta page; the page size
// follows it and its version (a page header of 16 bytes, then the meta:
// magic, version and page size, each 4 bytes in the host's byte order).
const (
	bboltMagic       = 0xED0CDAED
	bboltMagicOffset = 16
	bboltPageSizeOff = 24
	// bboltMinPages: two meta pages, the freelist and the root leaf,
	// which bbolt writes when it creates a file.
	bboltMinPages = 4
)

// checkBoltSize refuses a store file that is not a whole number of pages,
// at least bboltMinPages, which bbolt would fault or panic on. A missing
// file is new: bbolt creates and initialises it. An existing file of 0
// bytes is refused too: bbolt would initialise it as a new store, and a
// store truncated to nothing (a full disk, a botched copy, `: >file`)
// started the controller empty without a word, every job it held
// forgotten (a hostile trial: 294 jobs). The page size is the one in the
// first meta page, else the system's (as bbolt assumes).
func checkBoltSize(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	size := fi.Size()
	if size == 0 {
		return &CorruptError{Path: path, Reason: "the file exists but is empty, 0 bytes (truncated?): " +
			"the jobs and nodes it held, if any, are lost from it; a new store is made only where no file is"}
	}
	pageSize := int64(os.Getpagesize())
	var hdr [bboltPageSizeOff + 4]byte
	if _, err := io.ReadFull(f, hdr[:]); err == nil && binary.NativeEndian.Uint32(hdr[bboltMagicOffset:]) == bboltMagic {
		if ps := int64(binary.NativeEndian.Uint32(hdr[bboltPageSizeOff:])); ps >= 512 && ps&(ps-1) == 0 {
			pageSize = ps
		}
	}
	if size%pageSize != 0 || size < bboltMinPages*pageSize {
		return &CorruptError{Path: path, Reason: fmt.Sprintf("%d bytes, not a whole number of %d-byte pages and at least %d of them (truncated?)",
			size, pageSize, bboltMinPages)}
	}
	return nil
}

// checkStoreFiles refuses a store another user may change: dir (or a
// directory above it) by CheckPrivateDir, the file, when it exists, by
// CheckPrivateFile.
func checkStoreFiles(dir, path string) error {
	hint := "or give another --data-dir"
	if err := CheckPrivateDir(dir); err != nil {
		return fmt.Errorf("state: %w, %s", err, hint)
	}
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if err := CheckPrivateFile(path, fi); err != nil {
		return fmt.Errorf("state: %w, %s", err, hint)
	}
	return nil
}

// ErrNotPrivate means a file or directory holding the controller's state
// or a credential may be changed by another user than this process's
// effective user.
var ErrNotPrivate = errors.New("may be changed by another user")

// CheckPrivateFile refuses a regular file (fi from Lstat or Stat of path)
// that is not owned by this process's effective user, or that group or
// others may write. The error wraps ErrNotPrivate and says what to run.
func CheckPrivateFile(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	if uid, ok := ownerOf(fi); ok && uid != os.Geteuid() {
		return fmt.Errorf("%s is owned by uid %d, not by this user (uid %d): it %w; run chown %d %s",
			path, uid, os.Geteuid(), ErrNotPrivate, os.Geteuid(), path)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("%s has mode %#o: it %w; run chmod go-w %s", path, uint32(perm), ErrNotPrivate, path)
	}
	return nil
}

// CheckPrivateDir refuses a directory that another user could change
// entries of: dir (symbolic links resolved) and every directory above it
// must be owned by this process's effective user or by root, and not
// writable by group or others, except a directory above dir with the
// sticky bit (like /tmp), where others cannot rename or remove our
// entries. The error wraps ErrNotPrivate and says what to run.
func CheckPrivateDir(dir string) error {
	resolved, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	resolved, err = filepath.Abs(resolved)
	if err != nil {
		return err
	}
	return checkUp(resolved, true)
}

// checkUp checks d (as dir itself when top) and every directory above it.
func checkUp(d string, top bool) error {
	for ; ; d, top = filepath.Dir(d), false {
		if err := checkDir(d, top); err != nil {
			return err
		}
		if filepath.Dir(d) == d {
			return nil
		}
	}
}

// CheckParents applies CheckPrivateDir's rules for the directories above
// dir to those of them that exist, so a caller can refuse a place before
// it creates dir (and anything in it): a refused directory is left as it
// was. dir itself need not exist.
func CheckParents(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	// The nearest existing directory above dir; those above it exist too.
	d := filepath.Dir(abs)
	for _, err := os.Stat(d); err != nil && filepath.Dir(d) != d; _, err = os.Stat(d) {
		d = filepath.Dir(d)
	}
	resolved, err := filepath.EvalSymlinks(d)
	if err != nil {
		return err
	}
	return checkUp(resolved, false)
}

// checkDir checks one directory for CheckPrivateDir; top is dir itself.
func checkDir(d string, top bool) error {
	fi, err := os.Stat(d)
	if err != nil {
		return err
	}
	if uid, ok := ownerOf(fi); ok && uid != os.Geteuid() && uid != 0 {
		return fmt.Errorf("directory %s is owned by uid %d, neither this user (uid %d) nor root: it %w; run chown %d %s",
			d, uid, os.Geteuid(), ErrNotPrivate, os.Geteuid(), d)
	}
	perm, sticky := fi.Mode().Perm(), fi.Mode()&fs.ModeSticky != 0
	switch {
	case perm&0o022 == 0 || !top && sticky:
		return nil
	case sticky:
		// A shared directory such as /tmp: taking write access from it
		// would break it for everyone, so the advice is a private
		// directory inside it.
		return fmt.Errorf("directory %s has mode %#o (sticky, shared): others may create entries in it, so it %w; "+
			"keep the file in a directory only you can write, e.g. mkdir -m 700 %s",
			d, uint32(perm)|0o1000, ErrNotPrivate, filepath.Join(d, "pocket-"+strconv.Itoa(os.Geteuid())))
	default:
		return fmt.Errorf("directory %s has mode %#o: it %w; run chmod go-w %s", d, uint32(perm), ErrNotPrivate, d)
	}
}

// ownerOf is the uid owning a file, when the system says.
func ownerOf(fi fs.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}

// init creates the buckets and stamps the format version of a new store,
// and checks the version of an existing one.
func (b *Bolt) init(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketJobs, bucketNodes, bucketProfiles, bucketMeta} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("state: %s: %w", b.path, err)
		}
	}
	mb := tx.Bucket(bucketMeta)
	v := mb.Get(keyFormat)
	if v == nil {
		return mb.Put(keyFormat, []byte(strconv.Itoa(FormatVersion)))
	}
	return CheckFormat(b.path, string(v))
}

// CheckFormat parses a stored format version and refuses one newer than
// FormatVersion (a FormatError) or one that is not a version at all.
// where names the store in the error.
func CheckFormat(where, stored string) error {
	ver, err := strconv.Atoi(stored)
	if err != nil || ver < 1 {
		return fmt.Errorf("state: %s: format version %q is not a version number", where, stored)
	}
	if ver > FormatVersion {
		return &FormatError{Where: where, Stored: ver, Known: FormatVersion}
	}
	return nil
}

// Path is the store's file.
func (b *Bolt) Path() string { return b.path }

// Load implements Store.
// A damaged file gives a CorruptError rather than a crash.
func (b *Bolt) Load() (*Snapshot, error) {
	s := &Snapshot{}
	err := guard(b.path, func() error { return b.db.View(b.loadTx(s)) })
	if err != nil {
		return nil, err
	}
	// A record that decodes but holds a value out of range (check.go).
	if err := s.Check(); err != nil {
		return nil, &CorruptError{Path: b.path, Reason: "invalid record: " + err.Error()}
	}
	return s, nil
}

// loadTx returns the transaction of Load, filling s.
func (b *Bolt) loadTx(s *Snapshot) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketJobs).ForEach(func(k, v []byte) error {
			var j Job
			if err := json.Unmarshal(v, &j); err != nil {
				return b.undecodable(fmt.Sprintf("job %q", k), err)
			}
			s.Jobs = append(s.Jobs, j)
			return nil
		}); err != nil {
			return err
		}
		if err := tx.Bucket(bucketNodes).ForEach(func(k, v []byte) error {
			var n Node
			if err := json.Unmarshal(v, &n); err != nil {
				return b.undecodable(fmt.Sprintf("node %q", k), err)
			}
			s.Nodes = append(s.Nodes, n)
			return nil
		}); err != nil {
			return err
		}
		if err := tx.Bucket(bucketProfiles).ForEach(func(k, v []byte) error {
			var p Profile
			if err := json.Unmarshal(v, &p); err != nil {
				return b.undecodable(fmt.Sprintf("profile %q", k), err)
			}
			s.Profiles = append(s.Profiles, p)
			return nil
		}); err != nil {
			return err
		}
		v := tx.Bucket(bucketMeta).Get(keyMeta)
		if v == nil {
			s.Empty = len(s.Jobs) == 0 && len(s.Nodes) == 0 && len(s.Profiles) == 0
			return nil
		}
		if err := json.Unmarshal(v, &s.Meta); err != nil {
			return b.undecodable("meta", err)
		}
		return nil
	}
}

// undecodable is the CorruptError of a record (what) whose bytes do not
// decode (err): bbolt's checks pass, but its value is damaged. Before, it
// was reported as a plain error, without the corruption's advice (a
// hostile trial's garbage in a job record).
func (b *Bolt) undecodable(what string, err error) error {
	return &CorruptError{Path: b.path, Reason: what + " does not decode: " + err.Error()}
}

// Apply implements Store: one transaction, synced to disk before it
// returns.
func (b *Bolt) Apply(batch *Batch) error {
	enc, err := encodeBatch(batch)
	if err != nil {
		return err
	}
	err = b.db.Update(func(tx *bolt.Tx) error {
		jb, nb := tx.Bucket(bucketJobs), tx.Bucket(bucketNodes)
		for _, id := range batch.DeleteJobs {
			if err := jb.Delete([]byte(id)); err != nil {
				return err
			}
		}
		for _, a := range batch.DeleteNodes {
			if err := nb.Delete([]byte(a)); err != nil {
				return err
			}
		}
		for k, v := range enc.jobs {
			if err := jb.Put([]byte(k), v); err != nil {
				return err
			}
		}
		for k, v := range enc.nodes {
			if err := nb.Put([]byte(k), v); err != nil {
				return err
			}
		}
		if err := applyProfiles(tx.Bucket(bucketProfiles), batch.DeleteProfiles, enc.profs); err != nil {
			return err
		}
		if enc.meta != nil {
			return tx.Bucket(bucketMeta).Put(keyMeta, enc.meta)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("state: %s: %w", b.path, err)
	}
	return nil
}

// applyProfiles deletes then puts profile records in pb.
func applyProfiles(pb *bolt.Bucket, del []string, put map[string][]byte) error {
	for _, name := range del {
		if err := pb.Delete([]byte(name)); err != nil {
			return err
		}
	}
	for k, v := range put {
		if err := pb.Put([]byte(k), v); err != nil {
			return err
		}
	}
	return nil
}

// Close implements Store.
func (b *Bolt) Close() error { return b.db.Close() }

// Compile-time checks.
var (
	_ Store = (*Bolt)(nil)
	_ Store = (*Memory)(nil)
)
