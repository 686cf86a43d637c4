package controller

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/internal/pki"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// tenantRig is a TLS controller with one 1 GiB DRAM node, a certificate
// for each of the tenants alice and mallory (client role), and the
// operator's; its state lives in a memory store, so that it can restart.
type tenantRig struct {
	t    *testing.T
	dir  string
	st   *state.Memory
	c    *Controller
	addr string
	tune func(*Config) // if not nil, changes the controller's Config at start
}

const tenantNode = "127.0.0.1:7001"

func newTenantRig(t *testing.T) *tenantRig { return newTenantRigWith(t, nil) }

// newTenantRigWith is newTenantRig with tune changing the controller's
// Config (tenantRig.tune).
func newTenantRigWith(t *testing.T, tune func(*Config)) *tenantRig {
	dir := testPKI(t)
	ca, err := pki.LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"alice", "mallory"} {
		if err := ca.IssueTo(dir, pki.RoleClient, name, []string{"127.0.0.1"}); err != nil {
			t.Fatal(err)
		}
	}
	r := &tenantRig{t: t, dir: dir, st: state.NewMemory(), tune: tune}
	r.start()
	return r
}

// start (re)starts the controller over the rig's store and listens.
func (r *tenantRig) start() {
	srv, err := pki.ServerConfig(r.dir, "controller")
	if err != nil {
		r.t.Fatal(err)
	}
	cfg := Config{TLS: srv, FirstJobSeq: 1, Store: r.st}
	if r.tune != nil {
		r.tune(&cfg)
	}
	r.c = newTest(r.t, cfg)
	mustRegister(r.t, r.c, dramNode(tenantNode, 1<<30, 8000))
	a, err := r.c.Listen("127.0.0.1:0")
	if err != nil {
		r.t.Fatal(err)
	}
	r.addr = a.String()
}

func (r *tenantRig) client(member string) *metaclient.Client {
	return tlsClient(r.t, r.dir, r.addr, member, nil)
}

// beat has the node report that job holds bytes at mbps, a few times
// (job "": that it holds nothing).
func (r *tenantRig) beat(job string, mbps float64, bytes int64) {
	r.t.Helper()
	for range 4 {
		hb := &wire.Heartbeat{Addr: tenantNode, RxMbps: mbps,
			Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, Mbps: 8000, UsedBytes: bytes}}}
		if job != "" {
			hb.Loads = []wire.JobLoad{{Job: job, RxMbps: mbps, Bytes: bytes}}
		}
		if _, err := r.c.Heartbeat(hb); err != nil {
			r.t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestProfilesAreTheTenants (hostile trial, 2026-12-02): over TLS a job's
// run is recorded in the profile of its tenant (the certificate it was
// registered with) and sizes only that tenant's next job of its name.
// Before, profiles were kept by name alone: mallory registered a job named
// like alice's, had it hold 900 MiB and ended it, and alice's next hintless
// "sort" reserved 990 MiB of the node's 1 GiB, so other tenants' capacity
// hints were refused. The run's tenant survives a controller restart
// (the job's record), and an operator names a profile "TENANT/NAME", or
// the bare name while one tenant alone has one.
func TestProfilesAreTheTenants(t *testing.T) {
	r := newTenantRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	m, err := r.client("mallory").RegisterJob(ctx, "sort", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	r.beat(m.Job, 200, 900<<20)
	r.c.Close() // the run spans a restart: its tenant comes from the job's record
	r.start()
	r.beat(m.Job, 200, 900<<20)
	if _, err := r.client("mallory").DeregisterJob(ctx, m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := r.c.Profile("sort"); ok {
		t.Fatal(`mallory's run was recorded in the profile "sort", which sizes every tenant's job of the name`)
	}
	if p, _, ok := r.c.Profile("mallory/sort"); !ok || len(p.Runs) != 1 || p.Runs[0].PeakBytes != 900<<20 {
		t.Fatalf(`profile "mallory/sort": %+v, %v; want mallory's run, 900 MiB`, p, ok)
	}
	r.beat("", 0, 0) // the node has dropped the job's values

	a, err := r.client("alice").RegisterJob(ctx, "sort", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	if b := allocBytes(r.c, a.Job); b != 0 || a.Sized != wire.SizedDefault {
		t.Errorf("alice's hintless sort reserves %d bytes, sized from %q; want none, the default size", b, a.Sized)
	}
	own, err := r.client("mallory").RegisterJob(ctx, "sort", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	if b := allocBytes(r.c, own.Job); b != 990<<20 || own.AllocBytes != b || own.Sized != wire.SizedProfile {
		t.Errorf("mallory's next hintless sort reserves %d bytes (the reply says %d, sized from %q); want 990 MiB, its own profile's", b, own.AllocBytes, own.Sized)
	}
	st, err := r.client("operator").Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tenants := map[string]string{}
	for _, j := range st.Jobs {
		tenants[j.Job] = j.Tenant
	}
	if tenants[a.Job] != "alice" || tenants[own.Job] != "mallory" {
		t.Errorf("status gives the jobs' tenants %v; want %s alice, %s mallory", tenants, a.Job, own.Job)
	}
	if _, err := r.client("mallory").DeregisterJob(ctx, own.Job, own.Token); err != nil {
		t.Fatal(err)
	}

	op := r.client("operator")
	p, err := op.JobProfile(ctx, "sort")
	if err != nil || p.Name != "mallory/sort" {
		t.Fatalf("operator's profile of sort while one tenant has one: %+v, %v; want mallory/sort", p, err)
	}
	r.beat(a.Job, 50, 10<<20)
	if _, err := r.client("alice").DeregisterJob(ctx, a.Job, a.Token); err != nil {
		t.Fatal(err)
	}
	if _, err := op.JobProfile(ctx, "sort"); !errors.Is(err, wire.ErrNotFound) ||
		!strings.Contains(err.Error(), "alice/sort, mallory/sort") {
		t.Fatalf("operator's profile of sort with two tenants' profiles: %v; want not found naming both", err)
	}
	if p, err := op.JobProfile(ctx, "alice/sort"); err != nil || p.Name != "alice/sort" || len(p.Runs) != 1 ||
		p.Runs[0].PeakBytes != 10<<20 {
		t.Fatalf("operator's profile of alice/sort: %+v, %v; want alice's one run, 10 MiB", p, err)
	}
	// The operator's jobs are the cluster's: a bare key, which no client
	// certificate's tenant shares, whatever its name.
	opm, err := op.RegisterJob(ctx, "etl", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	r.beat(opm.Job, 50, 20<<20)
	if _, err := op.DeregisterJob(ctx, opm.Job, opm.Token); err != nil {
		t.Fatal(err)
	}
	if p, _, ok := r.c.Profile("etl"); !ok || p.Runs[0].Job != opm.Job {
		t.Fatalf(`the operator's run: profile "etl" %+v, %v; want it there`, p, ok)
	}
	// A tenant reads its own profiles, never another's, nor learns their
	// names.
	alice := r.client("alice")
	if p, err := alice.JobProfile(ctx, "sort"); err != nil || p.Name != "alice/sort" {
		t.Fatalf("alice's own profile of sort: %+v, %v", p, err)
	}
	if p, err := alice.JobProfile(ctx, "alice/sort"); err != nil || p.Name != "alice/sort" {
		t.Fatalf("alice's own alice/sort: %+v, %v", p, err)
	}
	if _, err := alice.JobProfile(ctx, "mallory/sort"); !errors.Is(err, wire.ErrForbidden) {
		t.Fatalf("alice reading mallory/sort: %v; want refused", err)
	}
	if _, err := alice.JobProfile(ctx, "etl"); !errors.Is(err, wire.ErrNotFound) || strings.Contains(err.Error(), "mallory") || strings.Contains(err.Error(), ": etl") ||
		!strings.Contains(err.Error(), "1 name(s) have one: alice/sort") {
		t.Fatalf("alice's profile of a name she never ran: %v; want not found naming only her own", err)
	}
	for _, bad := range []string{"alice/", "/sort", "a/b/sort", "al ice/sort", "~zz/sort"} {
		if _, err := op.JobProfile(ctx, bad); !errors.Is(err, wire.ErrBadKey) {
			t.Errorf("profile %q: %v; want bad key", bad, err)
		}
	}
}

// TestTenantLabel: a certificate name becomes a label that fits a profile
// key, is never a job name's prefix in another form, and is stable.
func TestTenantLabel(t *testing.T) {
	long := strings.Repeat("x", MaxTenantLabel+1)
	for cn, want := range map[string]string{"alice": "alice", "team-7.etl": "team-7.etl"} {
		if got := TenantLabel(cn); got != want {
			t.Errorf("TenantLabel(%q) = %q; want %q", cn, got, want)
		}
	}
	for _, cn := range []string{long, "a/b", "", "-x", "Ünïcode", "a\nb"} {
		got := TenantLabel(cn)
		if !strings.HasPrefix(got, "~") || len(got) != 17 || !validLabel(got) || TenantLabel(cn) != got {
			t.Errorf("TenantLabel(%q) = %q; want '~' and 16 hex digits, the same each time", cn, got)
		}
		if err := CheckProfileArg(ProfileKey(got, "sort")); err != nil {
			t.Errorf("the key of %q's sort: %v", cn, err)
		}
	}
	if TenantLabel(long) == TenantLabel(long+"y") {
		t.Error("two long names share a label")
	}
}

// TestProfileFloodEvictsItsOwn (hostile trial, 2026-12-02): the book's
// bound on names is shared, and a tenant that ends jobs of thousands of
// throwaway names evicts its own oldest profiles, not other tenants'.
// Before, eviction took the profile updated longest ago of all: one
// tenant's 10,000 idle jobs evicted every other tenant's profiles, and
// their next hintless jobs lost their learned sizes.
func TestProfileFloodEvictsItsOwn(t *testing.T) {
	b := newProfileBook(0, 10, false)
	at := time.Unix(1_700_000_000, 0)
	for _, key := range []string{"alice/sort", "alice/etl", "bob/sort", "sort"} {
		at = at.Add(time.Second)
		b.record(key, state.Run{Job: "x-1", Ended: at, PeakBytes: 1 << 20})
	}
	for i := range 500 {
		at = at.Add(time.Second)
		b.record(ProfileKey("mallory", fmt.Sprintf("junk-%d", i)), state.Run{Job: "junk-1", Ended: at})
	}
	for _, key := range []string{"alice/sort", "alice/etl", "bob/sort", "sort"} {
		if _, ok := b.profile(key); !ok {
			t.Errorf("%s was evicted by another tenant's flood of names", key)
		}
	}
	if b.lru.Len() != 10 || b.perTenant["mallory"] != 6 {
		t.Errorf("%d profiles, mallory holds %d; want 10, 6 (its newest)", b.lru.Len(), b.perTenant["mallory"])
	}
	if _, ok := b.profile("mallory/junk-499"); !ok {
		t.Error("the flooding tenant's newest profile was evicted")
	}
	// Loading a store over the bound evicts the same way: mallory's 6 down
	// to alice's 2, then the oldest of the two tenants tied at most.
	var ps []state.Profile
	for e := b.lru.Back(); e != nil; e = e.Prev() {
		ps = append(ps, *e.Value.(*state.Profile))
	}
	small := newProfileBook(0, 5, false)
	small.load(ps)
	got := map[string]int{}
	for k, n := range small.perTenant {
		got[k] = n
	}
	if want := map[string]int{"alice": 1, "bob": 1, "": 1, "mallory": 2}; !maps.Equal(got, want) {
		t.Errorf("loaded into 5 names, the tenants hold %v; want %v", got, want)
	}
}

// TestTenantOfOneCommonName: a certificate whose subject has two common
// names is labelled by its whole subject's hash, not by either name (Go
// keeps the last, other tools show the first: a hostile trial's CN=bob,
// CN=alice certificate was recorded as alice's); one with one common name
// is that name's.
func TestTenantOfOneCommonName(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	state := func(names ...string) tls.ConnectionState {
		var subj pkix.Name
		for _, n := range names {
			subj.ExtraNames = append(subj.ExtraNames, pkix.AttributeTypeAndValue{Type: oidCommonName, Value: n})
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: subj, NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}, VerifiedChains: [][]*x509.Certificate{{cert}}}
	}
	if got := TenantOf(state("alice")); got != "alice" {
		t.Errorf("one common name alice: %q", got)
	}
	multi := state("bob", "alice")
	two := TenantOf(multi)
	if two == "alice" || two == "bob" || !strings.HasPrefix(two, "~") || !validLabel(two) {
		t.Errorf("common names bob and alice: %q; want a hash label, neither name", two)
	}
	// A common name holding those bytes is another tenant (a hostile
	// trial's T61String common name held the subject's DER, and shared
	// its label).
	if TenantLabel(string(multi.PeerCertificates[0].RawSubject)) == two {
		t.Error("a common name equal to a subject's DER shares the subject's label")
	}
	if got := TenantOf(state()); !strings.HasPrefix(got, "~") {
		t.Errorf("no common name: %q; want a hash label", got)
	}
	if got := TenantOf(tls.ConnectionState{}); got != "" {
		t.Errorf("no certificate: %q; want no tenant", got)
	}
}
