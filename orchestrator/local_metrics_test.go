package orchestrator

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// TestLocalMetricsForPort: with MetricsFor, a node serves /metrics on the
// address of its port, and a node started again at a stopped node's port
// serves it where that one did. A new user's trial of pocket up
// --metrics-base had the autoscaler drain two of the first nodes and start
// nodes again at their addresses, which served no /metrics at all.
func TestLocalMetricsForPort(t *testing.T) {
	base := freeRange(t, 4) // two node ports, then their two metrics ports
	metricsOf := func(port int) string { return "127.0.0.1:" + strconv.Itoa(port+2) }
	l := &Local{Binary: buildPocket(t), StopTimeout: 5 * time.Second, Ports: PortRange{First: base, Last: base + 1},
		MetricsFor: metricsOf}
	defer l.Close()
	ctx := context.Background()
	serves := func(url string) bool {
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if r, err := http.Get(url); err == nil {
				r.Body.Close()
				return r.StatusCode == http.StatusOK
			}
		}
		return false
	}
	a, err := l.Start(ctx, NodeSpec{DRAM: "16MiB"})
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + metricsOf(base) + "/metrics"
	if a.Addr != "127.0.0.1:"+strconv.Itoa(base) || !serves(url) {
		t.Fatalf("node at %s serves no %s", a.Addr, url)
	}
	if err := l.Stop(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	again, err := l.Start(ctx, NodeSpec{DRAM: "16MiB"})
	if err != nil {
		t.Fatal(err)
	}
	if again.Addr != a.Addr || !serves(url) {
		t.Fatalf("node started again at %s (was %s) serves no %s", again.Addr, a.Addr, url)
	}
}
