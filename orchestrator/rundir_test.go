package orchestrator

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRunDirSweepsKilledRuns (hostile trial): a run directory whose lock
// no one holds (its run was killed: up with SIGKILL left its nodes' NVMe
// files, holding their values, and every restart added another) is
// removed by the next RunDir; a live run's is kept; release removes the
// run's own. A parent that is a symbolic link, or that others may write,
// is refused.
func TestRunDirSweepsKilledRuns(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "nvme")
	live, releaseLive, err := RunDir(parent, "up")
	if err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(parent, "up-killed")
	if err := os.MkdirAll(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{runLock, "local-1.nvme"} {
		if err := os.WriteFile(filepath.Join(stale, f), []byte("values"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	other := filepath.Join(parent, "other")
	if err := os.Mkdir(other, 0o700); err != nil {
		t.Fatal(err)
	}
	dir, release, err := RunDir(parent, "up")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the killed run's directory: %v; want it removed", err)
	}
	for _, d := range []string{live, dir, other} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s: %v; want it kept", d, err)
		}
	}
	release()
	releaseLive()
	for _, d := range []string{live, dir} {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s after release: %v; want it removed", d, err)
		}
	}

	elsewhere := t.TempDir()
	link := filepath.Join(t.TempDir(), "nvme")
	if err := os.Symlink(elsewhere, link); err != nil {
		t.Fatal(err)
	}
	if _, _, err := RunDir(link, "up"); err == nil {
		t.Error("a parent that is a symbolic link was taken")
	}
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, _, err := RunDir(open, "up"); err == nil {
		t.Error("a parent others may write was taken")
	}
}
