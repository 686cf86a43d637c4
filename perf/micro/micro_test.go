package micro

import (
	"context"
	"encoding/json"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/perf/workload"
)

func node(t *testing.T) string {
	d, err := dataplane.NewDRAM(64<<20, dataplane.DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nd, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", DRAM: d, Net: netio.Config{Loops: 1}})
	if err != nil {
		d.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		nd.Close()
		d.Close()
	})
	return nd.Addr().String()
}

// TestSuiteSavesEverything runs a tiny suite against one node and checks
// the files it writes: JSON that reads back, tables, and decodable PNGs.
func TestSuiteSavesEverything(t *testing.T) {
	addr := node(t)
	c := Config{
		Stores:  []Store{{Name: "pocket-dram", Target: workload.Target{Kind: workload.KindPocket, Addrs: []string{addr}}}},
		Samples: 50, MaxClients: 2, Duration: 50 * time.Millisecond, Inflight: 8,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := Run(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Latency) != 3 || len(r.Throughput) != 2 || len(r.IOPS) != 2 {
		t.Fatalf("cells: %d latency, %d throughput, %d iops", len(r.Latency), len(r.Throughput), len(r.IOPS))
	}
	for _, l := range r.Latency {
		if l.P50us <= 0 || l.P99us < l.P50us {
			t.Errorf("latency %+v", l)
		}
	}
	for _, x := range append(r.Throughput, r.IOPS...) {
		if x.OpsPerSec <= 0 || x.Errors != 0 {
			t.Errorf("rate %+v", x)
		}
	}
	dir := t.TempDir()
	if err := r.Save(dir); err != nil {
		t.Fatal(err)
	}
	var back Report
	b, _ := os.ReadFile(filepath.Join(dir, JSONFile))
	if err := json.Unmarshal(b, &back); err != nil || len(back.Latency) != 3 {
		t.Fatalf("json: %v", err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, MarkdownFile))
	if !strings.Contains(string(md), "| pocket-dram | get |") {
		t.Fatalf("markdown:\n%s", md)
	}
	for _, name := range []string{LatencyPNG, ThroughputPNG} {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := png.Decode(f); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		f.Close()
	}
}

func TestParseNeedsAStore(t *testing.T) {
	if _, _, _, err := parse(nil, io.Discard); err == nil {
		t.Fatal("no error without a store")
	}
	c, _, _, err := parse([]string{"--nodes", "a:1", "--redis", "redis://b:2"}, io.Discard)
	if err != nil || len(c.Stores) != 2 || len(c.Notes) != 1 {
		t.Fatalf("%v %+v", err, c)
	}
}
