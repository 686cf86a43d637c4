package bench

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/nvme"
	"github.com/pocketstore/pocket/wire"
)

// TestWrongTierEndsTheRun: a node's refusal of the run's tier (the job was
// placed on the other, or the node has no such tier) ends the run and
// says to pass --tier, as a refused job does. Before, a put run of a job
// placed on NVMe with the default --tier dram counted 455,976 refusals in
// 15 s (a new user's trial).
func TestWrongTierEndsTheRun(t *testing.T) {
	r := &client.Response{Op: wire.OpPut.Reply(), Code: wire.CodeUnsupported,
		Meta: wire.NewEncoder().ErrorResponse(wire.Errorf(wire.CodeUnsupported, "the job was placed on the nvme tier"))}
	err := checkPocket(wire.OpPut, r, 0)
	if !errors.Is(err, ErrWrongTier) || !persistent(err) {
		t.Fatalf("a refused tier: %v (persistent %v), want ErrWrongTier ending the run", err, persistent(err))
	}
}

// TestTooLargeIsNotTierFull: a put the store refuses for its value's size
// (here larger than half a node's NVMe staging memory, on a tier with
// room for it) is advised a smaller --size, not "tier full ... run
// again". Before, a new user's run of one 9 MiB key against a node with
// 16 MiB of NVMe staging read "the store had no room for the run's one
// key of 9MiB (tier full), though the node's nvme tier said 64MiB of its
// 64MiB were free: other values took it since; run again", which never
// helps.
func TestTooLargeIsNotTierFull(t *testing.T) {
	dir := t.TempDir()
	if err := nvme.ProbeDirectIO(dir); err != nil {
		t.Skipf("no O_DIRECT in %s: %v", dir, err)
	}
	dev, err := nvme.Open(filepath.Join(dir, "dev"), nvme.Options{Engine: nvme.EngineSync, Size: 32 << 20, BufferPool: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	tier, err := dataplane.NewNVMe(dev, dataplane.NVMeOptions{})
	if err != nil {
		dev.Close()
		t.Fatal(err)
	}
	n, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", NVMe: tier, Net: netio.Config{Loops: 1}})
	if err != nil {
		tier.Close()
		dev.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(); tier.Close(); dev.Close() })
	addr := n.Addr().String()
	cfg := Config{Op: Put, Size: 3 << 20, Keys: 1, Conns: 1, Pipeline: 1, Duration: 200 * time.Millisecond}
	st, err := Run(context.Background(), cfg, PocketDialer(addr, client.ConnOptions{Job: []byte("big"), NVMe: true}, cfg.Size))
	if err != nil {
		t.Fatal(err)
	}
	if st.NoSpace == 0 || !st.firstTooLarge {
		t.Fatalf("3 MiB puts with 4 MiB of staging: %d refused for space, too large %v (%q); want refused as too large", st.NoSpace, st.firstTooLarge, st.FirstNoSpace)
	}
	o := &Options{Addr: addr, Tier: wire.TierNVMe, Config: cfg}
	runErr := fmt.Errorf("bench: the store refused %d put(s) for lack of space; first: %s", st.NoSpace, st.FirstNoSpace)
	msg := o.noSpaceHint(context.Background(), runErr, true, st.firstTooLarge).Error()
	if !strings.Contains(msg, "whatever room it has") || !strings.Contains(msg, "smaller --size") || strings.Contains(msg, "tier full") {
		t.Errorf("advice for a value the store refuses by size: %q", msg)
	}
}
