package controller

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/pocketstore/pocket/controller/leader"
	"github.com/pocketstore/pocket/internal/etcdtest"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// startHAQuickDrop is startHA with drop orders bounded to 200 ms, so a
// deregistration does not wait 10 s on the test node's address (which
// accepts and never answers).
func startHAQuickDrop(t *testing.T, srv *etcdtest.Server) *haMember {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &haMember{addr: ln.Addr().String(), ran: make(chan error, 1)}
	m.cli, err = clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	m.cand, err = leader.New(leader.Config{Client: m.cli, Addr: m.addr, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	m.ha, err = NewHA(HAConfig{Config: Config{Secret: testSecret, HeartbeatInterval: 100 * time.Millisecond,
		DeadAfter: 10 * time.Second, DropTimeout: 200 * time.Millisecond, Logger: quietLog}, Candidate: m.cand, Etcd: m.cli})
	if err != nil {
		t.Fatal(err)
	}
	go m.ha.Serve(ln)
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() { m.ran <- m.ha.Run(ctx) }()
	t.Cleanup(m.stop)
	return m
}

// TestHARevokedTokenStaysRevoked: a job deregistered on the active
// controller stays ended after a kill -9 failover: the new leader refuses
// its token for the live map (CodeUnknownJob), answers its final map only
// to its own token, refuses a second deregistration as ended, and gives
// the next job another id with a later gen (token claims), so the
// revoked token grants nothing of it.
func TestHARevokedTokenStaysRevoked(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	ms := []*haMember{startHAQuickDrop(t, srv), startHAQuickDrop(t, srv)}
	joined := ms[0].addr + "," + ms[1].addr
	node := startListNode(t, joined)
	mc := metaclient.New(joined, metaclient.Options{Logger: quietLog})
	defer mc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	awaitNode(t, ctx, mc, node)

	gone, err := mc.RegisterJob(ctx, "rev", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := mc.RegisterJob(ctx, "rev", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mc.DeregisterJob(ctx, gone.Job, gone.Token); err != nil {
		var de *metaclient.OutcomeUnknownError
		if errors.As(err, &de) {
			t.Fatal(err)
		}
		t.Logf("deregistration: %v", err) // the node's drop fails: it never answers
	}

	lead := leaderOf(t, ms, mc.Leader())
	lead.kill()

	if m, err := mc.GetMap(ctx, gone.Job, gone.Token); !errors.Is(err, wire.ErrUnknownJob) {
		t.Errorf("after the failover, the live map of deregistered %s with its token: %+v, %v; want CodeUnknownJob", gone.Job, m, err)
	}
	if m, err := mc.GetMapOrEnded(ctx, gone.Job, other.Token); !errors.Is(err, wire.ErrBadToken) {
		t.Errorf("final map of %s with another job's token: %+v, %v; want CodeBadToken, as for a job that never was", gone.Job, m, err)
	}
	if m, err := mc.GetMapOrEnded(ctx, gone.Job, gone.Token); err != nil || !m.Ended || m.Job != gone.Job {
		t.Errorf("final map of %s with its own token after the failover: %+v, %v", gone.Job, m, err)
	}
	if _, err := mc.DeregisterJob(ctx, gone.Job, gone.Token); !errors.Is(err, wire.ErrUnknownJob) {
		t.Errorf("deregistering %s again on the new leader: %v; want CodeUnknownJob (ended)", gone.Job, err)
	}
	if m, err := mc.GetMap(ctx, other.Job, other.Token); err != nil || m.Job != other.Job {
		t.Errorf("live job %s after the failover: %+v, %v", other.Job, m, err)
	}
	next, err := mc.RegisterJob(ctx, "rev", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	gen := func(job string, tok []byte) uint64 {
		c, _ := token.ParseJob(testSecret, []byte(job), tok)
		return c.Gen
	}
	if slices.Contains([]string{gone.Job, other.Job}, next.Job) || gen(next.Job, next.Token) <= gen(other.Job, other.Token) {
		t.Errorf("job registered after the failover: %s gen %d; earlier %s gen %d, %s gen %d",
			next.Job, gen(next.Job, next.Token), gone.Job, gen(gone.Job, gone.Token), other.Job, gen(other.Job, other.Token))
	}
}
