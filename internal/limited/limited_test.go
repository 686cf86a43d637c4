package limited

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestReadFileBounds(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("12345"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFile(p, 5); err != nil || string(b) != "12345" {
		t.Fatalf("at the limit: %q, %v", b, err)
	}
	if _, err := ReadFile(p, 4); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), p) {
		t.Fatalf("over the limit: %v; want ErrTooLarge naming the path", err)
	}
	if _, err := ReadFile(filepath.Join(dir, "missing"), 5); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

// TestReadFileRefusesDevices (hostile trial): a device is not read: not
// /dev/zero, which never ends, nor /dev/ptmx, whose read waits for ever
// (`pocket node --profile /dev/ptmx` hung).
func TestReadFileRefusesDevices(t *testing.T) {
	for _, dev := range []string{"/dev/zero", "/dev/ptmx"} {
		if _, err := os.Stat(dev); err != nil {
			continue
		}
		if _, err := ReadFile(dev, 1<<10); !errors.Is(err, ErrNotRegular) {
			t.Errorf("%s: %v; want ErrNotRegular", dev, err)
		}
	}
}

// TestReadFileRefusesAPipe (hostile trial): a named pipe with no writer is
// refused at once, naming the path. Before, ReadFile blocked in open
// waiting for a writer: `pocket node --profile FIFO` and `--prices FIFO`
// hung.
func TestReadFileRefusesAPipe(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := ReadFile(p, 1<<10)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), p) {
			t.Fatalf("a FIFO: %v; want ErrNotRegular naming the path", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadFile of a FIFO with no writer still waiting after 5 s")
	}
}
