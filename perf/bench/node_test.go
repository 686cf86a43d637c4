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
func startNode(t *testing.T) string { return startNodeWith(t).Addr().String() }

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
		st, err := Run(context.Background(), cfg, PocketDialer(n.Addr().String(), client.ConnOptions{Job: []byte("bench")}, cfg.Size))
		if !errors.Is(err, ErrNeedsJob) || !strings.Contains(err.Error(), "--job") || !strings.Contains(err.Error(), "--controller") {
			t.Fatalf("%v run without a token: %v, want ErrNeedsJob naming --job and --controller", op, err)
		}
		// Every put was refused: nothing is written, nothing to delete
		// (an operator's trial read "deleted 0 of the 4 key(s) the run
		// wrote, the rest are left": the refused puts counted as written).
		if st != nil && (st.Written != 0 || st.CleanupNote() != "") {
			t.Errorf("%v run without a token: %d key(s) written, note %q; want none", op, st.Written, st.CleanupNote())
		}
		if time.Since(start) > 4*time.Second {
			t.Fatalf("%v run went on for %v after the node refused the job", op, time.Since(start))
		}
	}
}

// startNodeWith is startNode returning the node, for a test to set a
// job's epoch or drain it.
func startNodeWith(t *testing.T) *dataplane.Node {
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
	return n
}

// A node whose job is at map epoch 3 refuses requests stamped with 0 as
// stale, naming its epoch: the run adopts it on every connection and goes
// on, counting the few refused requests apart from wrong responses; a get
// run's preload sends its refused batches again. When the job's map
// changes during the run (epoch 5), the run adopts that one too.
func TestStaleEpochIsAdopted(t *testing.T) {
	n := startNodeWith(t)
	n.SetEpoch("bench", 3)
	opts := client.ConnOptions{Job: []byte("bench")}
	for _, cfg := range []Config{
		{Op: Put, Size: 64, Conns: 2, Pipeline: 4, Duration: 300 * time.Millisecond, Keys: 100},
		{Op: Get, Size: 64, Conns: 2, Pipeline: 4, Duration: 300 * time.Millisecond, Keys: 100},
	} {
		st, err := Run(context.Background(), cfg, PocketDialer(n.Addr().String(), opts, cfg.Size))
		checkRun(t, st, err, nil)
		// At most each connection's first pipeline is refused (the preload's
		// are sent again and not counted).
		if st.Refused > uint64(cfg.Conns*cfg.Pipeline) || st.Errors != 0 {
			t.Fatalf("%v run at a stale epoch: %d refused, %d errors (first %q); want at most %d refused and no error",
				cfg.Op, st.Refused, st.Errors, st.FirstError, cfg.Conns*cfg.Pipeline)
		}
	}

	cfg := Config{Op: Put, Size: 64, Conns: 2, Pipeline: 4, Duration: 2 * time.Second, Keys: 100}
	bumped := make(chan time.Time, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		n.SetEpoch("bench", 5)
		bumped <- time.Now()
	}()
	start := time.Now()
	st, err := Run(context.Background(), cfg, PocketDialer(n.Addr().String(), opts, cfg.Size))
	checkRun(t, st, err, nil)
	if at := <-bumped; at.After(start.Add(cfg.Warmup + cfg.Duration)) {
		t.Skipf("the machine was too slow: the epoch changed %v after the run began, after its end", at.Sub(start))
	}
	if st.Refused == 0 || st.Refused > uint64(2*cfg.Conns*cfg.Pipeline) || st.Errors != 0 ||
		!strings.Contains(st.FirstRefusal, "adopted the node's epoch") {
		t.Fatalf("run across an epoch change: %d refused (first %q), %d errors (first %q); want 1 to %d refused, no error",
			st.Refused, st.FirstRefusal, st.Errors, st.FirstError, 2*cfg.Conns*cfg.Pipeline)
	}
	r := NewResult("pocket://"+n.Addr().String(), "", st)
	var out strings.Builder
	if err := r.WriteText(&out); err != nil || !strings.Contains(out.String(), "refused") {
		t.Fatalf("report of a run with refusals: %v\n%s", err, out.String())
	}
}

// A run whose every reply fails (a draining node refuses every put) stops
// once no request has succeeded for the stall limit, with ErrStalled, not
// after its whole duration.
func TestPersistentRefusalsStopTheRun(t *testing.T) {
	n := startNodeWith(t)
	n.SetDraining(true)
	cfg := Config{Op: Put, Size: 64, Conns: 3, Pipeline: 2, Duration: 30 * time.Second, Keys: 100,
		StallLimit: 300 * time.Millisecond}
	start := time.Now()
	st, err := Run(context.Background(), cfg, PocketDialer(n.Addr().String(), client.ConnOptions{Job: []byte("bench")}, cfg.Size))
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the run went on for %v with every put refused", took)
	}
	if !errors.Is(err, ErrStalled) || !strings.Contains(err.Error(), "draining") || st == nil || st.Ops != 0 {
		t.Fatalf("run against a draining node: %v (stats %+v), want ErrStalled naming the refusal", err, st)
	}
}
