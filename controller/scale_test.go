package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// longName is a job name of the longest allowed length but for a suffix.
func longName(i int) string {
	s := fmt.Sprintf("j%d-", i)
	return s + strings.Repeat("x", maxNameLen-len(s))
}

func manyJobs(t testing.TB, c *Controller, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if _, err := c.RegisterJob(longName(i), wire.JobHints{CapacityBytes: 1}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStatusBoundedWithManyJobs (issue 11, C): with 12,000 jobs of
// long names registered, `status` answers within the control frame limit
// (the old reply listed every job: over 4 MiB from about 8,000 jobs, and
// every status call failed), says how many jobs there are, and the job
// listing pages through all of them.
func TestStatusBoundedWithManyJobs(t *testing.T) {
	const jobs = 12_000
	// The nodes never heartbeat: registering the jobs may take longer
	// than DeadAfter on a loaded machine (CI: "no active node" at job
	// 1 of 12,000 or later).
	c := newTest(t, Config{DeadAfter: time.Hour})
	for i := 0; i < 3; i++ {
		mustRegister(t, c, dramNode(fmt.Sprintf("127.0.0.1:%d", 7001+i), 1<<40, 1e9))
	}
	manyJobs(t, c, jobs)
	a, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mc := metaclient.New(a.String(), metaclient.Options{Logger: quietLog})
	defer mc.Close()
	ctx := context.Background()
	st, err := mc.Status(ctx)
	if err != nil {
		t.Fatalf("status with %d jobs: %v", jobs, err)
	}
	if len(st.Nodes) != 3 || len(st.Jobs) == 0 || len(st.Jobs) >= jobs || st.JobCount != jobs || st.NextJob == 0 {
		t.Fatalf("status: %d nodes, %d jobs listed, count %d, next %d", len(st.Nodes), len(st.Jobs), st.JobCount, st.NextJob)
	}
	if size := len(c.Status().Encode(flatbuffers.NewBuilder(0))); size > wire.DefaultControlMaxMeta {
		t.Fatalf("status reply %d bytes, over the limit", size)
	}
	// The listing pages through every job once, in registration order.
	seen := map[string]bool{}
	for _, j := range st.Jobs {
		seen[j.Job] = true
	}
	for after, pages := st.NextJob, 0; after != 0; pages++ {
		page, err := mc.ListJobs(ctx, after, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range page.Jobs {
			if seen[j.Job] {
				t.Fatalf("job %s listed twice", j.Job)
			}
			seen[j.Job] = true
		}
		if pages > jobs {
			t.Fatal("listing does not end")
		}
		after = page.NextJob
	}
	if len(seen) != jobs {
		t.Fatalf("listing saw %d jobs, want %d", len(seen), jobs)
	}
}

// TestHeartbeatsWithManyJobs (issue 11, C): a node whose controller holds
// 16,000 jobs of long names keeps heartbeating: every ack fits the control
// frame limit and the node's table syncs page by page, then each ack
// brings only what changed. (The old ack listed every job of the node at
// every heartbeat: past the frame limit here, so the node's heartbeats
// failed and the controller marked it dead.)
func TestHeartbeatsWithManyJobs(t *testing.T) {
	const jobs = 16_000
	c := newTest(t, Config{DeadAfter: time.Hour}) // its first heartbeat comes after the registrations; a failed one fails the test
	a, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mc := metaclient.New(a.String(), metaclient.Options{Secret: testSecret, Logger: quietLog})
	defer mc.Close()
	ctx := context.Background()
	reg := dramNode("127.0.0.1:7001", 1<<40, wire.MaxNodeMbps)
	reg.Proof = nil
	if _, err := mc.RegisterNode(ctx, *reg); err != nil {
		t.Fatal(err)
	}
	manyJobs(t, c, jobs)
	var since, snapRev, snapAfter uint64
	listed := 0
	for i := 0; ; i++ {
		ack, err := mc.Heartbeat(ctx, wire.Heartbeat{Addr: reg.Addr, Since: since, SnapRev: snapRev, SnapAfter: snapAfter})
		if err != nil {
			t.Fatalf("heartbeat %d: %v", i, err)
		}
		if !ack.Known {
			t.Fatal("node forgotten")
		}
		if ack.Full {
			listed += len(ack.Jobs)
			snapRev, snapAfter = ack.Rev, ack.After
			if !ack.More {
				since, snapRev, snapAfter = ack.Rev, 0, 0
			}
			continue
		}
		if listed != jobs {
			t.Fatalf("snapshot listed %d jobs, want %d", listed, jobs)
		}
		if len(ack.Jobs) != 0 || ack.More {
			t.Fatalf("an ack after the sync brings %d jobs", len(ack.Jobs))
		}
		break
	}
	// One registration later, the next ack brings exactly that job.
	m, err := c.RegisterJob("one-more", wire.JobHints{CapacityBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	ack, err := mc.Heartbeat(ctx, wire.Heartbeat{Addr: reg.Addr, Since: since})
	if err != nil || ack.Full || len(ack.Jobs) != 1 || ack.Jobs[0].Job != m.Job || ack.Jobs[0].Epoch != 1 {
		t.Fatalf("delta after one registration: %+v %v", ack, err)
	}
}

// TestRegistrationLimits (issue 11, C): a client's jobs, its registration
// rate and the cluster's jobs are bounded, each refusal a CodeLimit error
// naming the limit and its value; deregistering makes room again.
func TestRegistrationLimits(t *testing.T) {
	c := newTest(t, Config{MaxJobsPerClient: 5, RegisterRate: -1, MaxJobs: 8})
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<40, 1e9))
	a, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mc := metaclient.New(a.String(), metaclient.Options{Logger: quietLog})
	defer mc.Close()
	ctx := context.Background()
	var maps []*wire.PlacementMap
	for i := 0; i < 5; i++ {
		m, err := mc.RegisterJob(ctx, "mine", wire.JobHints{})
		if err != nil {
			t.Fatal(err)
		}
		maps = append(maps, m)
	}
	_, err = mc.RegisterJob(ctx, "mine", wire.JobHints{})
	if !errors.Is(err, wire.ErrLimit) || !strings.Contains(err.Error(), "MaxJobsPerClient 5") {
		t.Fatalf("sixth job of one client: %v", err)
	}
	if _, err := mc.DeregisterJob(ctx, maps[0].Job, maps[0].Token); err != nil {
		t.Fatal(err)
	}
	if _, err := mc.RegisterJob(ctx, "mine", wire.JobHints{}); err != nil {
		t.Fatalf("after a deregistration: %v", err)
	}
	// In-process registrations count against the cluster only.
	for i := 0; i < 3; i++ {
		if _, err := c.RegisterJob("local", wire.JobHints{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.RegisterJob("local", wire.JobHints{}); !errors.Is(err, wire.ErrLimit) || !strings.Contains(err.Error(), "MaxJobs 8") {
		t.Fatalf("ninth job of the cluster: %v", err)
	}

	r := newTest(t, Config{RegisterRate: 2, RegisterBurst: 3})
	mustRegister(t, r, dramNode("127.0.0.1:7001", 1<<40, 1e9))
	for i := 0; i < 3; i++ {
		if _, err := r.RegisterJobFrom("10.0.0.1", &wire.JobRegister{Name: "burst"}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = r.RegisterJobFrom("10.0.0.1", &wire.JobRegister{Name: "burst"})
	if !errors.Is(err, wire.ErrLimit) || !strings.Contains(err.Error(), "RegisterRate 2") {
		t.Fatalf("fourth registration in a burst of 3: %v", err)
	}
	if _, err := r.RegisterJobFrom("10.0.0.2", &wire.JobRegister{Name: "other"}); err != nil {
		t.Fatalf("another client is not limited by the first: %v", err)
	}
	time.Sleep(600 * time.Millisecond) // a token comes back every 500 ms
	if _, err := r.RegisterJobFrom("10.0.0.1", &wire.JobRegister{Name: "burst"}); err != nil {
		t.Fatalf("after the refill: %v", err)
	}
}

// TestTokenLifetime: a registration's TTL (capped by MaxTokenTTL) ends up
// in the token and the map; the controller deregisters the job when it
// expires, and refuses the token meanwhile.
func TestTokenLifetime(t *testing.T) {
	c := newTest(t, Config{HeartbeatInterval: 20 * time.Millisecond, MaxTokenTTL: time.Hour, DropTimeout: 100 * time.Millisecond})
	mustRegister(t, c, dramNode("192.0.2.1:7000", 1<<40, 1e9))
	m, err := c.RegisterJobFrom("", &wire.JobRegister{Name: "short", TTL: 150 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if m.Expires.IsZero() || time.Until(m.Expires) > 150*time.Millisecond {
		t.Fatalf("expiry %v", m.Expires)
	}
	long, err := c.RegisterJobFrom("", &wire.JobRegister{Name: "long", TTL: 48 * time.Hour})
	if err != nil || time.Until(long.Expires) > time.Hour {
		t.Fatalf("TTL over the cap: %v %v", long.Expires, err)
	}
	capped, err := c.RegisterJob("none", wire.JobHints{}) // no TTL asked, TokenTTL 0: the cap
	if err != nil || capped.Expires.IsZero() {
		t.Fatalf("no TTL with a cap: %v %v", capped.Expires, err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		_, err := c.GetMap(m.Job, m.Token)
		if errors.Is(err, wire.ErrUnknownJob) || errors.Is(err, wire.ErrRevoked) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("expired job still served: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := c.GetMap(long.Job, long.Token); err != nil {
		t.Fatalf("unexpired job: %v", err)
	}
}

func BenchmarkStatus(b *testing.B) {
	for _, jobs := range []int{1000, 10_000, 100_000} {
		b.Run(fmt.Sprint(jobs), func(b *testing.B) {
			c, err := New(Config{Secret: testSecret, DeadAfter: time.Hour, MaxJobs: 1 << 30, Logger: quietLog})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			for i := 0; i < 4; i++ {
				if _, err := c.RegisterNode(dramNode(fmt.Sprintf("127.0.0.1:%d", 7001+i), 1<<40, 1e9)); err != nil {
					b.Fatal(err)
				}
			}
			manyJobs(b, c, jobs)
			a, err := c.Listen("127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			mc := metaclient.New(a.String(), metaclient.Options{})
			defer mc.Close()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := mc.Status(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkRegisterJob(b *testing.B) {
	for _, jobs := range []int{0, 10_000, 90_000} {
		b.Run(fmt.Sprint(jobs), func(b *testing.B) {
			c, err := New(Config{Secret: testSecret, DeadAfter: time.Hour, MaxJobs: 1 << 30, Logger: quietLog})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			for i := 0; i < 4; i++ {
				if _, err := c.RegisterNode(dramNode(fmt.Sprintf("127.0.0.1:%d", 7001+i), 1<<40, 1e9)); err != nil {
					b.Fatal(err)
				}
			}
			manyJobs(b, c, jobs)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.RegisterJob("bench", wire.JobHints{CapacityBytes: 1}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
