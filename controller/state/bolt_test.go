package state

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// nobody is the uid tests give files of "another user" (as root only).
const nobody = 65534

// newBoltFile creates a store in a fresh directory, closes it and returns
// the directory and the file.
func newBoltFile(t *testing.T) (dir, path string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "controller")
	s, err := OpenBolt(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(&Batch{Meta: &Meta{}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, filepath.Join(dir, BoltFile)
}

// openCorrupt opens dir and wants a CorruptError naming path, without a
// crash, from OpenBolt or the first Load.
func openCorrupt(t *testing.T, dir, path string) {
	t.Helper()
	s, err := OpenBolt(dir)
	if err == nil {
		_, err = s.Load()
		s.Close()
	}
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Path != path || !strings.Contains(err.Error(), "move it aside") {
		t.Fatalf("err = %v, want a CorruptError for %s", err, path)
	}
}

// TestBoltTruncated: a store cut short (as `truncate -s 8192` did, which
// crashed the controller with SIGBUS) gives a CorruptError.
func TestBoltTruncated(t *testing.T) {
	for _, size := range []int64{100, 4096, 8192, 4096*4 + 10} {
		dir, path := newBoltFile(t)
		if err := os.Truncate(path, size); err != nil {
			t.Fatal(err)
		}
		openCorrupt(t, dir, path)
	}
}

// TestBoltGarbage: a store overwritten with garbage, whole or past its
// meta pages (bbolt panicked: "invalid freelist page"), gives a
// CorruptError.
func TestBoltGarbage(t *testing.T) {
	garbage := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*131 + 7)
		}
		return b
	}
	t.Run("whole", func(t *testing.T) {
		dir, path := newBoltFile(t)
		if err := os.WriteFile(path, garbage(1<<16), 0o600); err != nil {
			t.Fatal(err)
		}
		openCorrupt(t, dir, path)
	})
	t.Run("after the meta pages", func(t *testing.T) {
		dir, path := newBoltFile(t)
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := f.Stat()
		pg := int64(os.Getpagesize())
		if _, err := f.WriteAt(garbage(int(fi.Size()-2*pg)), 2*pg); err != nil {
			t.Fatal(err)
		}
		f.Close()
		openCorrupt(t, dir, path)
	})
}

// TestBoltUndecodableRecord: a record whose value is damaged (bbolt's own
// checks pass) gives a CorruptError naming it, with the corruption's
// advice. Before, a plain error without it.
func TestBoltUndecodableRecord(t *testing.T) {
	for _, bucket := range [][]byte{bucketJobs, bucketNodes, bucketProfiles, bucketMeta} {
		dir, path := newBoltFile(t)
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		key := []byte("jk-681892611")
		if string(bucket) == string(bucketMeta) {
			key = keyMeta
		}
		err = db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucket).Put(key, []byte("{\"id\": \"\x16"))
		})
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		openCorrupt(t, dir, path)
	}
}

// TestBoltEmptyFileRefused: an existing store file of 0 bytes (a store
// truncated to nothing: a hostile trial's 294 jobs were forgotten without
// a word) is refused as corrupted, saying jobs may be lost and to move it
// aside, and is left as it was; a missing file is a new store.
func TestBoltEmptyFileRefused(t *testing.T) {
	dir, path := newBoltFile(t)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	openCorrupt(t, dir, path)
	if _, err := OpenBolt(dir); err == nil || !strings.Contains(err.Error(), "empty, 0 bytes") ||
		!strings.Contains(err.Error(), "lost") {
		t.Fatalf("err = %v, want what was found and that jobs may be lost", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
		t.Fatalf("the refused file was changed: %v %v", fi, err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	s, err := OpenBolt(dir)
	if err != nil {
		t.Fatalf("a missing file: %v, want a new store", err)
	}
	defer s.Close()
	if snap, err := s.Load(); err != nil || !snap.Empty {
		t.Fatalf("load: %+v %v", snap, err)
	}
}

// TestBoltRefusesOthersFiles: a store directory or file another user may
// change is refused, with what to run.
func TestBoltRefusesOthersFiles(t *testing.T) {
	t.Run("directory writable by others", func(t *testing.T) {
		dir, _ := newBoltFile(t)
		if err := os.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		wantNotPrivate(t, dir, "chmod go-w "+dir)
	})
	t.Run("directory above writable by others", func(t *testing.T) {
		dir, _ := newBoltFile(t)
		if err := os.Chmod(filepath.Dir(dir), 0o777); err != nil {
			t.Fatal(err)
		}
		wantNotPrivate(t, dir, "chmod go-w "+filepath.Dir(dir))
	})
	t.Run("file writable by others", func(t *testing.T) {
		dir, path := newBoltFile(t)
		if err := os.Chmod(path, 0o666); err != nil {
			t.Fatal(err)
		}
		wantNotPrivate(t, dir, "chmod go-w "+path)
	})
	if os.Geteuid() != 0 {
		t.Skip("giving files to another user needs root")
	}
	t.Run("directory of another user", func(t *testing.T) {
		dir, _ := newBoltFile(t)
		if err := os.Chown(dir, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		wantNotPrivate(t, dir, "chown 0 "+dir)
	})
	t.Run("file of another user", func(t *testing.T) {
		dir, path := newBoltFile(t)
		if err := os.Chown(path, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		wantNotPrivate(t, dir, "chown 0 "+path)
	})
}

func wantNotPrivate(t *testing.T, dir, fix string) {
	t.Helper()
	s, err := OpenBolt(dir)
	if err == nil {
		s.Close()
	}
	if !errors.Is(err, ErrNotPrivate) || !strings.Contains(err.Error(), fix) || !strings.Contains(err.Error(), "--data-dir") {
		t.Fatalf("err = %v, want ErrNotPrivate saying %q", err, fix)
	}
}

// TestCheckPrivateDirSticky: a sticky directory writable by all (like
// /tmp) may hold the directory, but may not be it.
func TestCheckPrivateDirSticky(t *testing.T) {
	top := t.TempDir()
	if err := os.Chmod(top, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	inner := filepath.Join(top, "d")
	if err := os.Mkdir(inner, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := CheckPrivateDir(inner); err != nil {
		t.Fatalf("private directory in a sticky one: %v", err)
	}
	err := CheckPrivateDir(top)
	if !errors.Is(err, ErrNotPrivate) {
		t.Fatalf("sticky directory itself: %v", err)
	}
	// The advice is a private directory inside it, never to take write
	// access from a shared directory (a new user's trial was told "run
	// chmod go-w /tmp", which would break /tmp for everyone).
	if msg := err.Error(); strings.Contains(msg, "chmod") || !strings.Contains(msg, "mkdir -m 700") || !strings.Contains(msg, "01777") {
		t.Fatalf("sticky directory itself: %q; want the sticky mode and mkdir -m 700 advice, no chmod", msg)
	}
}

// TestRefusedDataDirLeftAsItWas: OpenBolt refuses a state directory under
// a directory others may write before it creates anything there (an
// operator's trial found the refused directory holding a new
// "controller" subdirectory); a sticky shared directory above (like /tmp)
// is still fine, as CheckPrivateDir has it.
func TestRefusedDataDirLeftAsItWas(t *testing.T) {
	data := t.TempDir()
	if err := os.Chmod(data, 0o777); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(data, "controller")
	if _, err := OpenBolt(dir); !errors.Is(err, ErrNotPrivate) {
		t.Fatalf("state under a mode-0777 directory: %v; want refused", err)
	}
	if entries, _ := os.ReadDir(data); len(entries) != 0 {
		t.Fatalf("refused directory now holds %d entries (%s...); want none", len(entries), entries[0].Name())
	}
	if err := os.Chmod(data, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	b, err := OpenBolt(filepath.Join(data, "mine", "controller"))
	if err != nil {
		t.Fatalf("state in a new private directory under a sticky one: %v", err)
	}
	b.Close()
}
