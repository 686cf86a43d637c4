package pocket

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/nvme"
)

// TestPutThatLostARaceForSpaceTriesAgain: another writer's unconfirmed
// chunks hold most of a job's 32 MiB NVMe tier when a 16 MiB put begins;
// the put stores chunks until the tier is full and is refused. It lost a
// race (there was room when it began): it drops its chunks and tries
// again after a pause (spacerace.go), and once the other writer has given
// its chunks back it is stored whole. On the old code it failed no space
// at once. Fan-ins are where it matters: a new user's trial's 48 puts of
// 8 MiB into a 256 MiB NVMe tier stored 13 of the 31 that fit.
func TestPutThatLostARaceForSpaceTriesAgain(t *testing.T) {
	const capacity, chunk = 32 << 20, 1 << 20
	c := newTestCluster(t, 0, 0)
	tier := c.addNVMeNode(capacity)
	ctx := context.Background()
	j, err := c.store().RegisterJob(ctx, "race", Hints{})
	if err != nil {
		t.Fatal(err)
	}
	other := j.newObject("other", 0)
	for i := 1; i <= 20; i++ {
		if err := other.putChunk(ctx, i, randBytes(chunk, uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	// The other writer gives its chunks back once the put has filled the
	// tier and dropped its own (a failed try).
	gaveBack := make(chan struct{})
	go func() {
		defer close(gaveBack)
		held := tier.Usage().Used
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if tier.Usage().Used > capacity-2*chunk {
				break
			}
		}
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if tier.Usage().Used <= held {
				break
			}
		}
		other.abortUnconfirmed()
	}()
	value := randBytes(16<<20, 7)
	err = j.Put(ctx, "v", value)
	<-gaveBack
	if err != nil {
		t.Fatalf("a 16 MiB put that lost a race for space to another writer's chunks: %v; want it stored once they were given back", err)
	}
	if got, err := j.Get(ctx, "v"); err != nil || !bytes.Equal(got, value) {
		t.Fatalf("get after the put: %d bytes, %v", len(got), err)
	}
}

// addNVMeNode adds a node with an NVMe tier of capacity bytes in a
// temporary file and no DRAM tier, its agent running until the test ends
// (it is not among c.nodes, whose tiers are DRAM), and returns the tier.
func (c *testCluster) addNVMeNode(capacity int64) *dataplane.NVMe {
	dir := c.t.TempDir()
	if err := nvme.ProbeDirectIO(dir); err != nil {
		c.t.Skipf("no direct I/O in %s: %v", dir, err)
	}
	dev, err := nvme.Open(filepath.Join(dir, "dev"), nvme.Options{Size: capacity})
	if err != nil {
		c.t.Fatal(err)
	}
	tier, err := dataplane.NewNVMe(dev, dataplane.NVMeOptions{})
	if err != nil {
		dev.Close()
		c.t.Fatal(err)
	}
	nd, err := dataplane.NewNode(dataplane.NodeConfig{AwaitSync: true, Listen: "127.0.0.1:0", NVMe: tier,
		Guard: dataplane.NewTokenGuard(testSecret), Net: netio.Config{Loops: 1}})
	if err != nil {
		c.t.Fatal(err)
	}
	cancel, done := c.startAgent(nd, nd.Addr().String())
	c.t.Cleanup(func() {
		cancel()
		<-done
		nd.Close()
		tier.Close()
		dev.Close()
	})
	c.awaitActive(1)
	return tier
}
