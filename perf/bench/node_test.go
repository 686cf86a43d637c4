package bench

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/netio"
)

// startNode runs a real storage node in the process on 127.0.0.1:0 with a
// small DRAM tier; it stops when the test ends.
func startNode(t *testing.T) string {
	t.Helper()
	d, err := dataplane.NewDRAM(64<<20, dataplane.DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", DRAM: d, Net: netio.Config{Loops: 1}})
	if err != nil {
		d.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(); d.Close() })
	return n.Addr().String()
}

// TestRunAgainstNode drives a real node through the wire driver: puts,
// then gets of preloaded keys, pipelined and not.
func TestRunAgainstNode(t *testing.T) {
	addr := startNode(t)
	opts := client.ConnOptions{Job: []byte("bench")}
	for _, cfg := range []Config{
		{Op: Put, Size: 1 << 10, Conns: 4, Pipeline: 1, Duration: 200 * time.Millisecond, Keys: 1000},
		{Op: Get, Size: 1 << 10, Conns: 4, Pipeline: 16, Duration: 300 * time.Millisecond, Keys: 1000},
		{Op: Get, Size: 256 << 10, Conns: 2, Pipeline: 2, Duration: 200 * time.Millisecond, Keys: 16},
	} {
		st, err := Run(context.Background(), cfg, PocketDialer(addr, opts, cfg.Size))
		checkRun(t, st, err, nil)
	}
}

// TestNodeMissingKeyIsAnError checks the wire driver reports a not-found
// reply as a wrong response, not as a broken connection.
func TestNodeMissingKeyIsAnError(t *testing.T) {
	addr := startNode(t)
	c, err := PocketDialer(addr, client.ConnOptions{Job: []byte("bench")}, 10)(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 2 { // the connection stays usable after the first
		c.SendGet([]byte("absent"))
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := c.Recv(); !errors.Is(err, ErrResponse) {
			t.Fatalf("Recv of a missing key = %v, want ErrResponse", err)
		}
	}
}

// A node with a token guard refuses a run without the job's token; the run
// stops at once with ErrNeedsJob, whose text names the flags to pass,
// whether the run preloads (get) or not (put).
func TestNodeWithoutTokenSaysWhatToPass(t *testing.T) {
	d, err := dataplane.NewDRAM(16<<20, dataplane.DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", DRAM: d, Net: netio.Config{Loops: 1},
		Guard: dataplane.NewTokenGuard(bytes.Repeat([]byte{7}, 32))})
	if err != nil {
		d.Close()
		t.Fatal(err)
	}
	defer func() { n.Close(); d.Close() }()
	for _, op := range []Op{Get, Put} {
		cfg := Config{Op: op, Size: 64, Conns: 2, Pipeline: 1, Duration: 5 * time.Second, Keys: 10}
		start := time.Now()
		_, err := Run(context.Background(), cfg, PocketDialer(n.Addr().String(), client.ConnOptions{Job: []byte("bench")}, cfg.Size))
		if !errors.Is(err, ErrNeedsJob) || !strings.Contains(err.Error(), "--job") || !strings.Contains(err.Error(), "--controller") {
			t.Fatalf("%v run without a token: %v, want ErrNeedsJob naming --job and --controller", op, err)
		}
		if time.Since(start) > 4*time.Second {
			t.Fatalf("%v run went on for %v after the node refused the job", op, time.Since(start))
		}
	}
}
