package pocket

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteFileAtomicNamesTheCallersPath: a download into a directory
// that does not exist fails naming the path asked for, not the temporary
// file beside it (a new user's trial saw ".out.part-246536247"), still
// matching fs.ErrNotExist, and commit (a delete-after-read) is not run.
func TestWriteFileAtomicNamesTheCallersPath(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "missing", "out")
	committed := false
	err := writeFileAtomic(dst, strings.NewReader("v"), func() error { committed = true; return nil })
	if err == nil || !strings.Contains(err.Error(), dst) || strings.Contains(err.Error(), ".part-") || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("write into a missing directory: %v; want an error naming %s, matching fs.ErrNotExist", err, dst)
	}
	if committed {
		t.Fatal("commit ran though nothing was written")
	}
}
