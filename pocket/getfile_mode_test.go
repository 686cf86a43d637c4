package pocket

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// GetFile gives an existing file its own mode back, and a new one the
// mode os.Create gives (0666 less the umask). Before, the temporary file's
// 0600 replaced a 0644 file's mode (a new user's trial); this test failed
// on the old code with 0600 for both.
func TestGetFileKeepsTheFilesMode(t *testing.T) {
	j := staticJob(t, Config{}, []string{dropMoveCluster(t, 1)[0].addr})
	ctx := context.Background()
	if err := j.Put(ctx, "k", []byte("value")); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	old := filepath.Join(dir, "old")
	if err := os.WriteFile(old, []byte("before"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(old, 0o640); err != nil {
		t.Fatal(err)
	}
	probe, err := os.Create(filepath.Join(dir, "probe"))
	if err != nil {
		t.Fatal(err)
	}
	probe.Close()
	want := map[string]os.FileMode{old: 0o640, filepath.Join(dir, "new"): mode(t, probe.Name())}
	for path, m := range want {
		if err := j.GetFile(ctx, "k", path); err != nil {
			t.Fatal(err)
		}
		if got := mode(t, path); got != m {
			t.Errorf("%s: mode %v after GetFile, want %v", filepath.Base(path), got, m)
		}
	}
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}
