package dataplane_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/nvme"
	"github.com/pocketstore/pocket/wire"
)

// TestNodeDeleteAfterReadConsumesOnce: gets with FlagDeleteAfterRead
// racing on one one-record value, each over a connection of its own, hand
// the value to exactly one of them (takeRead); the others answer "not
// found". The SDKs rely on the node for that: a one-record value's
// read-and-delete is one request. Before, the node deleted by version
// ignoring the delete's outcome and sent what it had opened either way, so
// gets that opened the value before either deleted it all returned it
// (with several DRAM loops, or on the NVMe tier's workers; found by a
// hostile review).
func TestNodeDeleteAfterReadConsumesOnce(t *testing.T) {
	tiers := map[string]func(t *testing.T) (dataplane.NodeConfig, uint16){
		"dram-4-loops": func(t *testing.T) (dataplane.NodeConfig, uint16) {
			d, err := dataplane.NewDRAM(64<<20, dataplane.DRAMOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.Close() })
			return dataplane.NodeConfig{Listen: "127.0.0.1:0", DRAM: d, Net: netio.Config{Loops: 4}}, 0
		},
		"nvme": func(t *testing.T) (dataplane.NodeConfig, uint16) {
			tier := newNVMe(t, 64<<20, nvme.Options{}, dataplane.NVMeOptions{})
			return dataplane.NodeConfig{Listen: "127.0.0.1:0", NVMe: tier, Net: netio.Config{Loops: 2}}, wire.FlagTierNVMe
		},
	}
	for name, mk := range tiers {
		t.Run(name, func(t *testing.T) {
			cfg, tierFlag := mk(t)
			n, err := dataplane.NewNode(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			addr := n.Addr().String()
			const racers = 6
			var clients []*client.Client
			for range racers {
				c := client.New(client.Options{ConnsPerNode: 1})
				defer c.Close()
				clients = append(clients, c)
			}
			ctx := context.Background()
			const rounds = 1000
			doubled := 0
			for round := range rounds {
				key := fmt.Sprintf("k-%d", round)
				val := bytes.Repeat([]byte{byte(round)}, 4096)
				req := wire.Request{Job: []byte("j"), Key: []byte(key), Version: uint64(round + 1)}
				if _, err := clients[0].Do(ctx, addr, wire.OpPut, tierFlag, &req, val, nil); err != nil {
					t.Fatal(err)
				}
				var mu sync.Mutex
				won := 0
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i := range racers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						r := wire.Request{Job: []byte("j"), Key: []byte(key)}
						got, err := clients[i].Do(ctx, addr, wire.OpGet, tierFlag|wire.FlagDeleteAfterRead, &r, nil, nil)
						mu.Lock()
						defer mu.Unlock()
						switch {
						case err == nil && bytes.Equal(got.Payload, val):
							won++
						case err == nil:
							t.Errorf("%s: wrong bytes", key)
						case !errors.Is(err, wire.ErrNotFound):
							t.Errorf("%s: %v", key, err)
						}
					}()
				}
				close(start)
				wg.Wait()
				if won != 1 {
					doubled++
					if doubled <= 3 {
						t.Logf("%s: %d readers got the value", key, won)
					}
				}
			}
			if doubled > 0 {
				t.Fatalf("in %d of %d rounds not exactly one of %d delete-after-read gets got the value", doubled, rounds, racers)
			}
		})
	}
}
