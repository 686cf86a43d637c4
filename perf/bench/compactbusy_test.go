package bench

import (
	"context"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/dataplane/dramtest"
	"github.com/pocketstore/pocket/netio"
)

// fragmentedNode runs a node whose DRAM tier another job filled with
// 100-byte values and then emptied but for one in 64: a put of another
// size finds no page and makes the node compact (dram_compact.go).
func fragmentedNode(t *testing.T) string {
	t.Helper()
	d, err := dataplane.NewDRAM(8<<20, dataplane.DRAMOptions{PageSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	n, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", DRAM: d, Net: netio.Config{Loops: 1}})
	if err != nil {
		d.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(); d.Close() })
	dramtest.Fragment(d)
	return n.Addr().String()
}

// A bench preload into a node whose DRAM tier must compact to take the
// values: the tier is 2 % used, every put fits once the node has moved a
// few values. The preload must succeed (a put answered busy stored
// nothing and is to be sent again), not fail "unexpected response: busy".
func TestPreloadRidesOutCompaction(t *testing.T) {
	addr := fragmentedNode(t)
	keys := NewKeyspace("pre", 32)
	err := Preload(context.Background(), PocketDialer(addr, client.ConnOptions{Job: []byte("bench")}, 64<<10),
		keys, make([]byte, 64<<10), 2, 5*time.Second)
	if err != nil {
		t.Fatalf("preload of 32 values of 64 KiB into a tier 2 %% used: %v", err)
	}
}

// A put run on such a node counts no wrong response: busy is not one.
func TestPutRunCountsNoBusyAsError(t *testing.T) {
	addr := fragmentedNode(t)
	cfg := Config{Op: Put, Size: 64 << 10, Conns: 2, Pipeline: 1, Duration: 500 * time.Millisecond, Keys: 32}
	st, err := Run(context.Background(), cfg, PocketDialer(addr, client.ConnOptions{Job: []byte("bench")}, cfg.Size))
	if err != nil {
		t.Fatal(err)
	}
	if st.Errors != 0 {
		t.Fatalf("put run on a node that compacts: %d wrong responses (first %q), %d ops", st.Errors, st.FirstError, st.Ops)
	}
}
