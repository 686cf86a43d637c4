package orchestrator

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe for the logger's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLocalLogsExits: a node killed from outside is logged at warning
// level with its address and exit status; one stopped with Stop at info
// level. Before, a child's exit was not logged at all. A node that exited
// is no longer listed (it was until Stop).
func TestLocalLogsExits(t *testing.T) {
	var buf lockedBuffer
	l := &Local{Binary: buildPocket(t), StopTimeout: 5 * time.Second, Logger: slog.New(slog.NewTextHandler(&buf, nil))}
	defer l.Close()
	ctx := context.Background()
	a, err := l.Start(ctx, NodeSpec{DRAM: "16MiB"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Start(ctx, NodeSpec{DRAM: "16MiB"})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Stop(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	pb := l.procs[b.ID]
	l.mu.Unlock()
	if err := syscall.Kill(pb.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-pb.done
	if ns := l.Nodes(); len(ns) != 0 {
		t.Errorf("Nodes() = %v after the only node left exited, want none", ns)
	}
	if err := l.Stop(ctx, b.ID); err != nil {
		t.Errorf("Stop of a node that exited: %v", err)
	}
	out := buf.String()
	for _, want := range []string{
		`level=INFO msg="orchestrator: node stopped" id=` + a.ID + " addr=" + a.Addr,
		`level=WARN msg="orchestrator: node exited unasked`,
		"id=" + b.ID + " addr=" + b.Addr,
		`status="signal: killed"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// TestLocalLogsExitZeroAsLeft: a node that exits 0 by itself (as a node
// does once its controller drained and retired it) is logged at info
// level as having left, not at warning level as a crash. Before, a normal
// `pocket node drain` under `pocket up` logged "node exited unasked
// (crashed or killed)" with status "exit status 0". The node is a script
// that says it serves and exits 0.
func TestLocalLogsExitZeroAsLeft(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "node.sh")
	script := "#!/bin/sh\necho 'pocket node serving on 127.0.0.1:1'\nexit 0\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	var buf lockedBuffer
	l := &Local{Binary: bin, StopTimeout: 5 * time.Second, Logger: slog.New(slog.NewTextHandler(&buf, nil))}
	defer l.Close()
	n, err := l.Start(context.Background(), NodeSpec{DRAM: "16MiB"})
	if err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	p := l.procs[n.ID]
	l.mu.Unlock()
	<-p.done
	out := buf.String()
	want := `level=INFO msg="orchestrator: node left after its drain`
	if !strings.Contains(out, want) || !strings.Contains(out, `status="exit status 0"`) {
		t.Errorf("log lacks %q with exit status 0:\n%s", want, out)
	}
	if strings.Contains(out, "level=WARN") {
		t.Errorf("an exit 0 is logged as a warning:\n%s", out)
	}
}
