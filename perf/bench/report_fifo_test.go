package bench

import (
	"bytes"
	"io"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReportRefusesAPipe (hostile trial): `pocket bench --report FIFO`
// waited for a writer for ever, ignoring SIGTERM; it now fails at once
// saying the path is not a regular file.
func TestReportRefusesAPipe(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- report(p, io.Discard, &stderr) }()
	select {
	case code := <-done:
		if code == 0 || !strings.Contains(stderr.String(), "not a regular file") {
			t.Fatalf("report of a FIFO: exit %d: %s; want a refusal", code, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("report of a FIFO with no writer still waiting after 5 s")
	}
}
