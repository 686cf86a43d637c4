package controller

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

func TestHistoryAndMetrics(t *testing.T) {
	c := newTest(t, Config{})
	a := "127.0.0.1:7001"
	mustRegister(t, c, dramNode(a, 1<<30, 1000))
	if _, err := c.RegisterJob("j", wire.JobHints{PeakMbps: 300, CapacityBytes: 1 << 28}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < HistoryLen+5; i++ {
		_, err := c.Heartbeat(&wire.Heartbeat{Addr: a, RxMbps: float64(i), TxMbps: 400, CPUPercent: 50,
			Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, UsedBytes: 1 << 29, Mbps: 1000}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	h := c.History(a)
	if len(h) != HistoryLen || h[len(h)-1].RxMbps != HistoryLen+4 || h[0].RxMbps != 5 {
		t.Fatalf("history: %d samples, first rx %v, last rx %v", len(h), h[0].RxMbps, h[len(h)-1].RxMbps)
	}
	s := h[len(h)-1]
	if s.NetMeasured != 0.4 || s.NetAlloc != 0.3 || s.CPU != 0.5 || s.Capacity[kindDRAM] != 0.5 || time.Since(s.At) > time.Minute {
		t.Fatalf("sample: %+v", s)
	}
	if c.History("127.0.0.1:1") != nil {
		t.Fatal("history of an unknown node")
	}
	srv := httptest.NewServer(c.MetricsHandler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`pocket_controller_nodes{state="active"} 1`,
		`pocket_controller_jobs 1`,
		`pocket_node_net_utilization{node="127.0.0.1:7001",source="measured"} 0.4`,
		`pocket_node_net_utilization{node="127.0.0.1:7001",source="allocated"} 0.3`,
		`pocket_node_capacity_utilization{node="127.0.0.1:7001",tier="dram"} 0.5`,
		`pocket_node_cpu_utilization{node="127.0.0.1:7001"} 0.5`,
	} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("/metrics lacks %q:\n%s", want, body)
		}
	}
}
