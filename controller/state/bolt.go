package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
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
// missing) the store in dir. It fails with a FormatError when the store
// was written by a newer format version, and when another process holds
// the file open (after a one-second wait): two controllers on one
// directory would overwrite each other.
func OpenBolt(dir string) (*Bolt, error) {
	if dir == "" {
		return nil, errors.New("state: no directory for the controller's store")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	path := filepath.Join(dir, BoltFile)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("state: %s is in use by another process (another controller on this --data-dir?)", path)
		}
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	b := &Bolt{db: db, path: path}
	if err := db.Update(b.init); err != nil {
		db.Close()
		return nil, err
	}
	return b, nil
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
func (b *Bolt) Load() (*Snapshot, error) {
	s := &Snapshot{}
	err := b.db.View(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketJobs).ForEach(func(k, v []byte) error {
			var j Job
			if err := json.Unmarshal(v, &j); err != nil {
				return fmt.Errorf("state: %s: job %q: %w", b.path, k, err)
			}
			s.Jobs = append(s.Jobs, j)
			return nil
		}); err != nil {
			return err
		}
		if err := tx.Bucket(bucketNodes).ForEach(func(k, v []byte) error {
			var n Node
			if err := json.Unmarshal(v, &n); err != nil {
				return fmt.Errorf("state: %s: node %q: %w", b.path, k, err)
			}
			s.Nodes = append(s.Nodes, n)
			return nil
		}); err != nil {
			return err
		}
		if err := tx.Bucket(bucketProfiles).ForEach(func(k, v []byte) error {
			var p Profile
			if err := json.Unmarshal(v, &p); err != nil {
				return fmt.Errorf("state: %s: profile %q: %w", b.path, k, err)
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
			return fmt.Errorf("state: %s: meta: %w", b.path, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
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
