package orchestrator

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// buildPocket builds the pocket binary the Local orchestrator runs.
func buildPocket(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the pocket binary")
	}
	bin := filepath.Join(t.TempDir(), "pocket")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/pocketstore/pocket/tools/pocket").CombinedOutput()
	if err != nil {
		t.Fatalf("build pocket: %v\n%s", err, out)
	}
	return bin
}

// TestLocalStartsServingNodes starts two standalone nodes, checks each
// accepts connections when Start returns (well inside the 2 s target),
// and stops them.
func TestLocalStartsServingNodes(t *testing.T) {
	l := &Local{Binary: buildPocket(t), StopTimeout: 5 * time.Second}
	defer l.Close()
	ctx := context.Background()
	var nodes []Node
	for i := 0; i < 2; i++ {
		t0 := time.Now()
		n, err := l.Start(ctx, NodeSpec{DRAM: "16MiB"})
		if err != nil {
			t.Fatal(err)
		}
		conn, err := net.DialTimeout("tcp", n.Addr, time.Second)
		if err != nil {
			t.Fatalf("node %s does not accept connections after Start: %v", n.Addr, err)
		}
		conn.Close()
		t.Logf("node %s serving %v after Start was called", n.Addr, time.Since(t0).Round(time.Millisecond))
		nodes = append(nodes, n)
	}
	if got := len(l.Nodes()); got != 2 || nodes[0].ID == nodes[1].ID {
		t.Fatalf("Nodes: %d, ids %q %q", got, nodes[0].ID, nodes[1].ID)
	}
	if err := l.Stop(ctx, nodes[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", nodes[0].Addr, time.Second); err == nil {
		t.Fatal("a stopped node still accepts connections")
	}
	if err := l.Stop(ctx, nodes[0].ID); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("second stop: %v", err)
	}
	if len(l.Nodes()) != 1 {
		t.Fatal("the stopped node is still listed")
	}
}
