package leader

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pocketstore/pocket/internal/etcdtest"
)

// slack is how long past the TTL a takeover may take on a loaded test
// machine (a watch event and a Txn, under -race on two shared cores).
const slack = 8 * time.Second

type campaigner struct {
	cli  *clientv3.Client
	c    *Candidate
	term chan *Term
	err  chan error
}

// candidates starts n candidates, each on its own etcd client (its own
// process, as far as etcd can tell), campaigning at once.
func candidates(t *testing.T, srv *etcdtest.Server, n int) []*campaigner {
	var cs []*campaigner
	for i := 0; i < n; i++ {
		cli := srv.Client(t)
		c, err := New(Config{Client: cli, Addr: fmt.Sprintf("127.0.0.1:%d", 7000+i), TTL: DefaultTTL})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		cp := &campaigner{cli: cli, c: c, term: make(chan *Term, 1), err: make(chan error, 1)}
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		go func() {
			term, err := c.Campaign(ctx)
			if err != nil {
				cp.err <- err
				return
			}
			cp.term <- term
		}()
		cs = append(cs, cp)
	}
	return cs
}

// nextLeader waits up to limit for exactly one of cs to be elected, and
// returns its index and term.
func nextLeader(t *testing.T, cs []*campaigner, limit time.Duration) (int, *Term) {
	t.Helper()
	deadline := time.After(limit)
	for {
		for i, cp := range cs {
			select {
			case term := <-cp.term:
				return i, term
			case err := <-cp.err:
				t.Fatalf("candidate %d: %v", i, err)
			default:
			}
		}
		select {
		case <-deadline:
			t.Fatalf("no leader within %v", limit)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// noOtherLeader fails if any candidate but skip has been elected.
func noOtherLeader(t *testing.T, cs []*campaigner, skip ...int) {
	t.Helper()
	for i, cp := range cs {
		if contains(skip, i) {
			continue
		}
		select {
		case <-cp.term:
			t.Fatalf("candidate %d elected while another leads", i)
		default:
		}
	}
}

func contains(xs []int, x int) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

// waitObserved waits until every candidate's Leader() is want.
func waitObserved(t *testing.T, cs []*campaigner, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, cp := range cs {
		for cp.c.Leader() != want {
			if time.Now().After(deadline) {
				t.Fatalf("candidate %s observes leader %q; want %q", cp.c.Addr(), cp.c.Leader(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func TestOneLeadsOthersObserve(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	cs := candidates(t, srv, 3)
	i, term := nextLeader(t, cs, 10*time.Second)
	time.Sleep(500 * time.Millisecond) // give the others a chance to (wrongly) win
	noOtherLeader(t, cs, i)
	if term.Key() == "" || term.Rev() <= 0 {
		t.Fatalf("term key %q rev %d", term.Key(), term.Rev())
	}
	waitObserved(t, cs, cs[i].c.Addr())
	got, err := CurrentLeader(context.Background(), cs[0].cli, "")
	if err != nil || got != cs[i].c.Addr() {
		t.Fatalf("CurrentLeader = %q, %v; want %q", got, err, cs[i].c.Addr())
	}
	select {
	case <-term.Done():
		t.Fatalf("term ended while leading: %v", context.Cause(term.Context()))
	default:
	}
}

// TestKilledLeaderReplaced kills the leader as kill -9 would: its client
// goes away without resigning, and its lease expires after the TTL.
func TestKilledLeaderReplaced(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	cs := candidates(t, srv, 3)
	i, old := nextLeader(t, cs, 10*time.Second)
	waitObserved(t, cs, cs[i].c.Addr())
	killed := time.Now()
	cs[i].cli.Close()
	j, term := nextLeader(t, cs, DefaultTTL+slack)
	took := time.Since(killed)
	t.Logf("candidate %d took over %v after the leader's client closed (TTL %v)", j, took, DefaultTTL)
	if j == i {
		t.Fatal("the killed candidate was elected again")
	}
	noOtherLeader(t, cs, i, j)
	if term.Rev() <= old.Rev() {
		t.Fatalf("new term's rev %d not after the old one's %d", term.Rev(), old.Rev())
	}
	var rest []*campaigner
	for k, cp := range cs {
		if k != i {
			rest = append(rest, cp)
		}
	}
	waitObserved(t, rest, cs[j].c.Addr())
	select {
	case <-old.Done():
	case <-time.After(DefaultTTL + slack):
		t.Fatal("the killed leader's term did not end")
	}
}

func TestCloseHandsOverAtOnce(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	// A long TTL: a takeover within it proves Close deleted the key.
	cli := srv.Client(t)
	a, err := New(Config{Client: cli, Addr: "a:1", TTL: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ta, err := a.Campaign(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{Client: srv.Client(t), Addr: "b:1", TTL: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() { _, err := b.Campaign(ctx); got <- err }()
	time.Sleep(300 * time.Millisecond)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("b did not take over after a closed (well within a's 30 s TTL): %v", err)
	}
	if ta.Context().Err() == nil {
		t.Fatal("a's term still live after Close")
	}
	if _, err := a.Campaign(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Campaign after Close = %v; want ErrClosed", err)
	}
	if r, err := cli.Get(context.Background(), ta.Key()); err != nil || len(r.Kvs) != 0 {
		t.Fatalf("a's key %s after Close: %v, %v; want deleted", ta.Key(), r, err)
	}
}

func TestTermEndsWhenKeyDeleted(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	cli := srv.Client(t)
	c, err := New(Config{Client: cli, Addr: "a:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	term, err := c.Campaign(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Delete(context.Background(), term.Key()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-term.Done():
		if cause := context.Cause(term.Context()); cause == nil || cause.Error() != "leader key deleted" {
			t.Fatalf("cause %v; want leader key deleted", cause)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("term live after its key was deleted")
	}
	// It can lead again on the same session.
	t2, err := c.Campaign(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if t2.Rev() <= term.Rev() {
		t.Fatalf("second term rev %d <= first %d", t2.Rev(), term.Rev())
	}
}

func TestCurrentLeaderNone(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	if _, err := CurrentLeader(context.Background(), srv.Client(t), "/nobody"); !errors.Is(err, ErrNoLeader) {
		t.Fatalf("CurrentLeader of an empty election = %v; want ErrNoLeader", err)
	}
}

func TestConfigChecked(t *testing.T) {
	cli := &clientv3.Client{}
	for _, cfg := range []Config{
		{Addr: "a:1"},
		{Client: cli},
		{Client: cli, Addr: "a:1", TTL: -time.Second},
		{Client: cli, Addr: "a:1", TTL: MaxTTL + time.Second},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	for ttl, want := range map[time.Duration]int{0: 2, time.Second: 1, 1500 * time.Millisecond: 2, 10 * time.Second: 10} {
		c := Config{TTL: ttl}
		if got, err := c.ttlSeconds(); err != nil || got != want {
			t.Errorf("TTL %v: %d s, %v; want %d s", ttl, got, err, want)
		}
	}
}

func TestParseEndpoints(t *testing.T) {
	got, err := ParseEndpoints(" 10.0.0.1:2379, http://e2:2379,https://[::1]:2379")
	if err != nil || len(got) != 3 || got[0] != "10.0.0.1:2379" || got[1] != "http://e2:2379" || got[2] != "https://[::1]:2379" {
		t.Fatalf("ParseEndpoints = %q, %v", got, err)
	}
	for _, bad := range []string{"", "a:1,", "e1", "ftp://e:1", "http://", "http://e"} {
		if _, err := ParseEndpoints(bad); err == nil {
			t.Errorf("ParseEndpoints(%q) accepted", bad)
		}
	}
}

func TestDial(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	cli, err := Dial(srv.Endpoints(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cli.Close()
	srv.Stop()
	if cli, err := Dial(srv.Endpoints(), nil); err == nil {
		cli.Close()
		t.Fatal("Dial of a stopped etcd succeeded")
	}
}

// TestCampaignSurvivesLostSession: a candidate whose lease is lost while
// it waits does not win with a key that is gone, but campaigns again.
func TestCampaignSurvivesLostSession(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	admin := srv.Client(t)
	a, err := New(Config{Client: srv.Client(t), Addr: "a:1"})
	if err != nil {
		t.Fatal(err)
	}
	ta, err := a.Campaign(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{Client: srv.Client(t), Addr: "b:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got := make(chan *Term, 1)
	go func() {
		term, err := b.Campaign(context.Background())
		if err != nil {
			t.Error(err)
		}
		got <- term
	}()
	// Find b's key once it waits, and revoke its lease.
	var bLease clientv3.LeaseID
	for deadline := time.Now().Add(10 * time.Second); bLease == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("b never campaigned")
		}
		r, err := admin.Get(context.Background(), DefaultPrefix+"/", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range r.Kvs {
			if string(kv.Key) != ta.Key() {
				bLease = clientv3.LeaseID(kv.Lease)
			}
		}
	}
	if _, err := admin.Revoke(context.Background(), bLease); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // b's client sees its lease gone
	a.Close()
	term := <-got
	if term == nil {
		t.FailNow()
	}
	r, err := admin.Get(context.Background(), term.Key())
	if err != nil || len(r.Kvs) != 1 || r.Kvs[0].CreateRevision != term.Rev() {
		t.Fatalf("b's term key %s: %v, %v; want it present at rev %d", term.Key(), r, err, term.Rev())
	}
	if clientv3.LeaseID(r.Kvs[0].Lease) == bLease {
		t.Fatal("b's term is on the revoked lease")
	}
	select {
	case <-term.Done():
		t.Fatalf("b's term ended: %v", context.Cause(term.Context()))
	case <-time.After(500 * time.Millisecond):
	}
}

// TestTermEndsWhenEtcdGone: a leader cut off from etcd stops leading
// within about its TTL, since etcd will expire its key by then.
func TestTermEndsWhenEtcdGone(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	c, err := New(Config{Client: srv.Client(t), Addr: "a:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	term, err := c.Campaign(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	srv.Stop()
	select {
	case <-term.Done():
		t.Logf("term ended %v after etcd stopped (TTL %v): %v", time.Since(stopped), c.TTL(), context.Cause(term.Context()))
	case <-time.After(c.TTL() + slack):
		t.Fatalf("term still live %v after etcd stopped", c.TTL()+slack)
	}
}

// TestCampaignWithoutEtcdLeavesLeaderFree: while etcd is away, a campaign
// waiting for its lease does not hold the lock Leader takes (every request
// to the controller asks it), and it ends when its context does. An
// operator's trial found a controller that stopped answering when etcd
// went away, and stayed so after etcd came back: Campaign granted its
// lease holding the candidate's lock, with no way to give up.
func TestCampaignWithoutEtcdLeavesLeaderFree(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	cli := srv.Client(t)
	srv.Stop()
	c, err := New(Config{Client: cli, Addr: "a:1"})
	if err != nil {
		t.Fatal(err)
	}
	// Closed at the end, not deferred: on the old code Close waited for
	// the same lock, and the failure would hang instead of reporting.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.Campaign(ctx)
		done <- err
	}()
	time.Sleep(500 * time.Millisecond) // the campaign is waiting for its lease
	answered := make(chan string, 1)
	go func() { answered <- c.Leader() }()
	select {
	case l := <-answered:
		if l != "" {
			t.Errorf("Leader() = %q without etcd, want none", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Leader() blocked behind a campaign waiting for etcd")
	}
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Campaign won without etcd")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Campaign still waiting for its lease 10 s after its context ended")
	}
	if err := c.Close(); err != nil {
		t.Logf("close without etcd: %v", err)
	}
}
