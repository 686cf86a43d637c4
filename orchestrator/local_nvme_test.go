package orchestrator

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLocalGivesEachNodeItsNVMeFile: with NodeSpec.NVMe a size alone, each
// node gets a file of its own in NVMeDir, of that size, removed once the
// node has stopped; a link or file already at a node's path fails its
// start and is left alone; without NVMeDir such a spec is refused before
// any process starts. Before, Local passed NVMe through as PATH:SIZE, so the
// nodes of one spec would have shared one file (`pocket up` had no NVMe
// tier).
func TestLocalGivesEachNodeItsNVMeFile(t *testing.T) {
	if _, err := (&Local{}).Start(context.Background(), NodeSpec{DRAM: "16MiB", NVMe: "16MiB"}); err == nil || !strings.Contains(err.Error(), "NVMeDir") {
		t.Fatalf("a size-only NVMe spec without NVMeDir: %v; want a refusal naming NVMeDir", err)
	}
	dir := t.TempDir()
	l := &Local{Binary: buildPocket(t), StopTimeout: 5 * time.Second, NVMeDir: dir}
	defer l.Close()
	ctx := context.Background()
	var nodes []Node
	for range 2 {
		n, err := l.Start(ctx, NodeSpec{DRAM: "16MiB", NVMe: "16MiB"})
		if err != nil {
			if strings.Contains(err.Error(), "direct I/O refused") {
				t.Skipf("the test directory's file system refuses O_DIRECT: %v", err)
			}
			t.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		st, err := os.Stat(filepath.Join(dir, n.ID+".nvme"))
		if err != nil || st.Size() != 16<<20 {
			t.Fatalf("node %s's NVMe file: %v, %v; want 16 MiB", n.ID, st, err)
		}
	}
	// A link planted where the next node's file goes is not followed:
	// the start fails, and neither the link nor its target is touched.
	target := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.WriteFile(target, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "local-3.nvme")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Start(ctx, NodeSpec{DRAM: "16MiB", NVMe: "16MiB"}); err == nil {
		t.Fatal("a node started on a planted link")
	}
	if b, err := os.ReadFile(target); err != nil || string(b) != "keep" {
		t.Fatalf("the link's target: %q, %v; want it untouched", b, err)
	}
	if _, err := os.Lstat(link); err != nil {
		t.Fatalf("the planted link was removed: %v", err)
	}
	if err := l.Stop(ctx, nodes[0].ID); err != nil {
		t.Fatal(err)
	}
	gone(t, filepath.Join(dir, nodes[0].ID+".nvme"))
	if _, err := os.Stat(filepath.Join(dir, nodes[1].ID+".nvme")); err != nil {
		t.Fatalf("the running node's file: %v", err)
	}
	l.Close()
	gone(t, filepath.Join(dir, nodes[1].ID+".nvme"))
}

// gone fails t unless file is gone: Stop and Close return once the
// node's exit is reaped and its file removed.
func gone(t *testing.T, file string) {
	t.Helper()
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("%s after its node stopped: %v; want it removed", file, err)
	}
}
