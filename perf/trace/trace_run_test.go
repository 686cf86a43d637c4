package trace

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/dataplane/agent"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/pocket"
	"github.com/pocketstore/pocket/wire"
)

var runSecret = []byte("0123456789abcdef-trace-secret")

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// cluster starts a controller and n DRAM nodes heartbeating through the
// real agent, all on loopback in this process, stopped at the test's end,
// and returns the controller and a store dialled to it.
func cluster(t *testing.T, n int) (*controller.Controller, *pocket.Store) {
	t.Helper()
	ctl, err := controller.New(controller.Config{Secret: runSecret, HeartbeatInterval: 100 * time.Millisecond,
		DeadAfter: 2 * time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := ctl.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	for range n {
		startNode(t, addr.String())
	}
	deadline := time.Now().Add(10 * time.Second)
	for active(ctl) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d nodes active", active(ctl), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s, err := pocket.Dial(context.Background(), addr.String(), pocket.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return ctl, s
}

func startNode(t *testing.T, ctlAddr string) {
	d, err := dataplane.NewDRAM(64<<20, dataplane.DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nd, err := dataplane.NewNode(dataplane.NodeConfig{AwaitSync: true, Listen: "127.0.0.1:0", DRAM: d,
		Guard: dataplane.NewTokenGuard(runSecret), Net: netio.Config{Loops: 1}})
	if err != nil {
		d.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	mc := metaclient.New(ctlAddr, metaclient.Options{Secret: runSecret, Logger: quiet})
	go func() {
		defer close(done)
		defer mc.Close()
		_ = agent.Run(ctx, agent.Config{Node: nd, Addr: nd.Addr().String(), Controller: mc, Logger: quiet})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		nd.Close()
		d.Close()
	})
}

func active(ctl *controller.Controller) int {
	n := 0
	for _, ns := range ctl.Status().Nodes {
		if ns.State == wire.NodeActive {
			n++
		}
	}
	return n
}

// TestRunSamplesJobsAndVerifies runs a short trace, a sort and a followed
// video job whose load rises and falls by phase, on two nodes: every job
// ends without error with every key it wrote read back, the followed
// job's map shows in the samples, never before it arrived, and its busy
// phase moved bytes. No figure here depends on timing but
// "something moved".
func TestRunSamplesJobsAndVerifies(t *testing.T) {
	ctl, store := cluster(t, 2)
	const size = 16 << 10
	jobs := []JobSpec{
		{Name: "sort", Kind: Sort, Run: 4 * time.Second, Mbps: 20, ValueSize: size, Keys: 16},
		{Name: "stream", Kind: Video, Arrive: time.Second, ValueSize: size, Keys: 16, Follow: true,
			Phases: []Phase{{For: time.Second, Mbps: 5}, {For: 2 * time.Second, Mbps: 40}, {For: time.Second, Mbps: 5}},
			Hints:  pocket.Hints{PeakMbps: 5}},
	}
	res, err := Run(context.Background(), Config{Store: store, Jobs: jobs, Timescale: 0.5, Length: 10 * time.Second,
		Sample: 100 * time.Millisecond, Workers: 2,
		Status: func(context.Context) (*wire.ClusterStatus, error) { return ctl.Status(), nil }})
	if err != nil {
		t.Fatal(err)
	}
	if jobs[1].Run != 0 {
		t.Fatal("Run changed the caller's specs")
	}
	for _, j := range res.Jobs {
		if j.Errors != 0 || j.Written == 0 || j.Verified != j.Written || j.Puts == 0 {
			t.Fatalf("job %s: %+v", j.Name, j)
		}
	}
	stream := res.Followed()
	if len(stream) != 1 || stream[0].Spec.Run != 4*time.Second || len(stream[0].PhaseMbps) != 3 || stream[0].PhaseMbps[1] <= 0 {
		t.Fatalf("followed: %+v", stream)
	}
	if s := stream[0]; s.MinNodes < 1 || s.MaxNodes > 2 || s.MinNodes > s.MaxNodes {
		t.Fatalf("stream's nodes %d-%d on a 2-node cluster", s.MinNodes, s.MaxNodes)
	}
	listed := 0
	for _, p := range res.Points {
		jp, ok := p.PerJob["stream"]
		if !ok {
			continue
		}
		listed++
		// Registered at trace second 1: never listed before it arrived.
		if p.T < 1 || jp.Nodes < 1 || jp.Epoch == 0 {
			t.Fatalf("sample %+v", p)
		}
	}
	if listed == 0 || len(res.Points) < 10 {
		t.Fatalf("stream in %d of %d samples", listed, len(res.Points))
	}
}

// TestVerifyAllFindsALostValue: the read-back at a job's end counts a key
// it wrote that is gone as an error.
func TestVerifyAllFindsALostValue(t *testing.T) {
	_, store := cluster(t, 1)
	ctx := context.Background()
	job, err := store.RegisterJob(ctx, "v", pocket.Hints{})
	if err != nil {
		t.Fatal(err)
	}
	defer job.Deregister(ctx)
	l := newLoad(JobSpec{Name: "v", Kind: Video, Run: time.Second, ValueSize: 1024, Keys: 4}, job)
	buf := make([]byte, 1024)
	for range 3 {
		l.put(ctx, buf)
	}
	if w, v := l.verifyAll(ctx, 0); w != 3 || v != 3 || l.errs.Load() != 0 {
		t.Fatalf("before: %d written, %d verified, %d errors", w, v, l.errs.Load())
	}
	if err := job.Delete(ctx, key(1)); err != nil {
		t.Fatal(err)
	}
	if w, v := l.verifyAll(ctx, 0); w != 3 || v != 2 || l.errs.Load() != 1 {
		t.Fatalf("after a delete: %d written, %d verified, %d errors", w, v, l.errs.Load())
	}
	if e, _ := l.firstErr.Load().(string); e == "" {
		t.Fatal("no first error")
	}
}

// TestInterruptedRunReportsWhatRan (a new user's trial): a run whose
// context ends (Ctrl-C) returns what ran, marked interrupted, with its
// error; the job running then is neither verified nor failed, and one not
// yet arrived did not run. Before, Run returned no result, and the
// running job's read-back counted each key as an error ("0 of 256 keys
// verified, 256 errors").
func TestInterruptedRunReportsWhatRan(t *testing.T) {
	ctl, store := cluster(t, 1)
	jobs := []JobSpec{
		{Name: "sort", Kind: Sort, Run: 20 * time.Second, Mbps: 20, ValueSize: 16 << 10, Keys: 16},
		{Name: "late", Kind: Sort, Arrive: 30 * time.Second, Run: time.Second, Mbps: 5, ValueSize: 16 << 10, Keys: 4},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	res, err := Run(ctx, Config{Store: store, Jobs: jobs, Sample: 100 * time.Millisecond, Workers: 2,
		Status: func(context.Context) (*wire.ClusterStatus, error) { return ctl.Status(), nil }})
	if err == nil || res == nil {
		t.Fatalf("interrupted run: %v, %v; want what ran and the context's error", res, err)
	}
	if res.Interrupted <= 0 || len(res.Points) == 0 {
		t.Fatalf("interrupted at %v with %d samples; want the time and the samples taken", res.Interrupted, len(res.Points))
	}
	sort, late := res.Jobs[0], res.Jobs[1]
	if !sort.Interrupted || sort.Errors != 0 || sort.Puts == 0 || sort.Written == 0 || sort.Verified != 0 {
		t.Errorf("the running job: %+v; want interrupted, its puts and keys written, no error, none verified", sort)
	}
	if !late.Interrupted || late.Errors != 0 || late.ID != "" {
		t.Errorf("the job not arrived: %+v; want interrupted, not run", late)
	}
	var b strings.Builder
	if err := res.Markdown(&b, "test", "", 5); err != nil || !strings.Contains(b.String(), "**Interrupted** at t=") ||
		!strings.Contains(b.String(), "| job errors | 0 |") {
		t.Errorf("report of an interrupted run (%v):\n%s", err, b.String())
	}
}
