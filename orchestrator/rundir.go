package orchestrator

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/pocketstore/pocket/controller/state"
)

// runLock is the lock file in each run directory, and in their parent.
const runLock = ".lock"

// RunDir makes a directory of its own under parent for the files of this
// process's nodes (Local.NVMeDir): parent/PREFIX-*, mode 0700, holding a
// lock (flock(2) on a file in it) for as long as release has not been
// called and the process lives. First it removes, with their files, the
// PREFIX-* directories under parent whose lock no process holds: those of
// a run that was killed before it could remove its own (a node's values
// must not outlive it). A lock on parent itself keeps two processes from
// sweeping each other's directory while it is being made.
//
// parent is created (0700) if missing; it must be a directory, not a
// symbolic link, that no other user can change, nor any directory above
// it (another user could otherwise move the run directories away, or
// point parent elsewhere). release removes the directory and what is left in it, and
// drops the lock.
func RunDir(parent, prefix string) (dir string, release func(), err error) {
	if err := state.CheckParents(parent); err != nil { // before anything is made there
		return "", nil, err
	}
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return "", nil, err
	}
	if err := checkPrivateDir(parent); err != nil {
		return "", nil, err
	}
	guard, err := lockFile(filepath.Join(parent, runLock), true)
	if err != nil {
		return "", nil, err
	}
	defer guard.Close()
	sweepRuns(parent, prefix)
	dir, err = os.MkdirTemp(parent, prefix+"-")
	if err != nil {
		return "", nil, err
	}
	lock, err := lockFile(filepath.Join(dir, runLock), true)
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", nil, err
	}
	return dir, func() {
		_ = os.RemoveAll(dir)
		_ = lock.Close()
	}, nil
}

// checkPrivateDir refuses a path that is not a directory (a symbolic link
// is not followed), or that another user could change entries of, itself
// or through a directory above it (state.CheckPrivateDir's rules: a
// hostile trial, under a data directory of mode 0777, swapped the parent
// for a link to a directory of its own while up ran and had a node write
// through links it planted there).
func checkPrivateDir(path string) error {
	st, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if st.Mode()&os.ModeSymlink != 0 || !st.IsDir() {
		return fmt.Errorf("%s: not a directory (a symbolic link is not followed)", path)
	}
	return state.CheckPrivateDir(path)
}

// lockFile opens (creating) path and takes an exclusive flock on it,
// waiting for it when wait, else failing with EWOULDBLOCK when another
// holds it. The file stays locked until it is closed.
func lockFile(path string, wait bool) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	how := syscall.LOCK_EX
	if !wait {
		how |= syscall.LOCK_NB
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// sweepRuns removes parent's PREFIX-* directories whose lock no process
// holds. The caller holds parent's own lock, so none is being made.
func sweepRuns(parent, prefix string) {
	ents, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), prefix+"-") {
			continue
		}
		dir := filepath.Join(parent, e.Name())
		lock, err := lockFile(filepath.Join(dir, runLock), false)
		if errors.Is(err, syscall.EWOULDBLOCK) {
			continue // a live run's
		}
		_ = os.RemoveAll(dir)
		if lock != nil {
			_ = lock.Close()
		}
	}
}
