package dataplane_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/nvme"
	"github.com/pocketstore/pocket/wire"
)

// TestNodeNVMeTier serves puts and gets from the NVMe tier over loopback:
// one connection at a time (the loop may run device calls inline) and many
// at once (device calls go to the workers), every value byte-exact.
func TestNodeNVMeTier(t *testing.T) {
	tier := newNVMe(t, 64<<20, nvme.Options{}, dataplane.NVMeOptions{})
	n, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", NVMe: tier, Net: netio.Config{Loops: 2}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	c := client.New(client.Options{ConnsPerNode: 4})
	defer c.Close()
	ctx := context.Background()
	addr := n.Addr().String()
	roundTrip := func(key string, size int) error {
		val := bytes.Repeat([]byte(key), size/len(key)+1)[:size]
		req := wire.Request{Job: []byte("j"), Key: []byte(key)}
		if _, err := c.Do(ctx, addr, wire.OpPut, wire.FlagTierNVMe, &req, val, nil); err != nil {
			return fmt.Errorf("put %s: %w", key, err)
		}
		r, err := c.Do(ctx, addr, wire.OpGet, wire.FlagTierNVMe, &req, nil, nil)
		if err != nil || !bytes.Equal(r.Payload, val) {
			return fmt.Errorf("get %s: %v, %d bytes", key, err, len(r.Payload))
		}
		return nil
	}
	for i, size := range []int{0, 1, 4096, 5000, 1 << 20} {
		if err := roundTrip(fmt.Sprintf("one-%d", i), size); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if err := roundTrip(fmt.Sprintf("g%d-%d", g, i), 4096+i*97); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if _, err := c.Do(ctx, addr, wire.OpGet, 0, &wire.Request{Job: []byte("j"), Key: []byte("one-0")}, nil, nil); err == nil {
		t.Fatal("a DRAM get on a node without a DRAM tier succeeded")
	}
}
