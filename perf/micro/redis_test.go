package micro

import (
	"context"
	"net"
	"os/exec"
	"testing"
	"time"

	"github.com/pocketstore/pocket/perf/workload"
)

// TestSuiteRedisNoErrors drives a real redis-server (skipped without one):
// every request of every cell must succeed.
func TestSuiteRedisNoErrors(t *testing.T) {
	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not on PATH")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	cmd := exec.Command(path, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	tgt := workload.Target{Kind: workload.KindRedis, Addrs: []string{"127.0.0.1:" + port}}
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", tgt.Addrs[0]); err == nil {
			c.Close()
			break
		}
		if i == 100 {
			t.Fatal("redis-server did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	c := Config{Stores: []Store{{Name: "redis", Target: tgt}}, Samples: 50, MaxClients: 2, Duration: 100 * time.Millisecond, Inflight: 8}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := Run(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range append(r.Throughput, r.IOPS...) {
		if x.Errors != 0 || x.OpsPerSec <= 0 {
			t.Errorf("%+v", x)
		}
	}
}
