package dataplane_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/nvme"
	"github.com/pocketstore/pocket/telemetry/metrics"
	"github.com/pocketstore/pocket/wire"
)

// TestNodeMetricsNVMe: requests served on the workers (the NVMe tier under
// concurrent load) are counted and timed once each, like inline ones.
func TestNodeMetricsNVMe(t *testing.T) {
	tier := newNVMe(t, 64<<20, nvme.Options{}, dataplane.NVMeOptions{})
	n, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", NVMe: tier, Net: netio.Config{Loops: 2}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	c := client.New(client.Options{ConnsPerNode: 4})
	defer c.Close()
	const workers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for g := range workers {
		wg.Go(func() {
			for i := range each {
				req := wire.Request{Job: []byte("j"), Key: []byte(fmt.Sprintf("g%d-%d", g, i))}
				if _, err := c.Do(context.Background(), n.Addr().String(), wire.OpPut, wire.FlagTierNVMe, &req, make([]byte, 4096), nil); err != nil {
					errs <- err
					return
				}
				if _, err := c.Do(context.Background(), n.Addr().String(), wire.OpGet, wire.FlagTierNVMe, &req, nil, nil); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	fams := scrapeOf(t, n)
	for _, op := range []string{"put", "get"} {
		if v, _ := fams.Value(metrics.NodeRequests, "op", op, "result", "ok"); v != workers*each {
			t.Errorf("%s ok = %v, want %d", op, v, workers*each)
		}
		if m := fams.Find(metrics.NodeRequestDuration, "op", op); m.GetHistogram().GetSampleCount() != workers*each {
			t.Errorf("%s latencies %d, want %d", op, m.GetHistogram().GetSampleCount(), workers*each)
		}
	}
	if v, _ := fams.Value(metrics.NodeSentBytes); v != workers*each*4096 {
		t.Errorf("sent %v bytes, want %d", v, workers*each*4096)
	}
	if v, _ := fams.Value(metrics.NodeTierUsed, "tier", "nvme"); v < workers*each*4096 {
		t.Errorf("nvme used %v bytes, want at least %d", v, workers*each*4096)
	}
}

// scrapeOf scrapes n's metrics through the handler a node serves them with.
func scrapeOf(t *testing.T, n *dataplane.Node) metrics.Families {
	t.Helper()
	reg, err := metrics.NewRegistry(n.MetricsCollector())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(metrics.Handler(reg, nil))
	defer srv.Close()
	fams, err := metrics.Scrape(srv.Client(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}
