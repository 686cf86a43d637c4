package main

import (
	"strings"
	"testing"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/wire"
)

// TestStatusShowsClientAllotments (a new user's trial: the operator added
// each team's allotments up from the job list by hand): status lists what
// each client's jobs are allotted against the quota per client, in the
// table and in --json; without a quota and with one client it says
// nothing of them. A client's ended jobs' persisted values show beside
// its allotments (they count against the byte quota), and what it stores,
// marked past the quota (its jobs' puts are then refused).
func TestStatusShowsClientAllotments(t *testing.T) {
	st := &wire.ClusterStatus{JobCount: 3, Jobs: []wire.JobStatus{{Job: "a-1", Name: "a", Tenant: "alpha", AllocMbps: 600}},
		Clients: []wire.ClientHold{{Client: "tenant alpha", Jobs: 2, AllocBytes: 250 << 20, AllocMbps: 1200, StoredBytes: 120 << 20},
			{Client: "tenant beta", Jobs: 1, AllocBytes: 0, AllocMbps: 599.9999999},
			{Client: "client 10.0.0.9", PersistedBytes: 4 << 30, StoredBytes: 4 << 30, OverQuota: true}},
		QuotaBytes: 300 << 20, QuotaMbps: 2000}
	v := statusViewAt(st, controller.DefaultPrices())
	if len(v.Clients) != 3 || v.Clients[2].PersistedBytes != 4<<30 || v.Clients[0] != (clientHoldJSON{Client: "tenant alpha", Tenant: "alpha", Jobs: 2, AllocBytes: 250 << 20, AllocMbps: 1200, StoredBytes: 120 << 20}) ||
		!v.Clients[2].OverQuota || v.Clients[2].StoredBytes != 4<<30 ||
		v.Quota != (clientQuotaJSON{Bytes: 300 << 20, Mbps: 2000}) {
		t.Fatalf("json clients %+v, quota %+v", v.Clients, v.Quota)
	}
	out, _ := stdoutOf(t, func() int { printStatus(v); return 0 })
	for _, want := range []string{
		"allotted per client (quota per client: 300MiB and 2000 Mb/s):",
		"CLIENT           JOBS  ALLOC SIZE  ALLOC Mb/s   PERSISTED  STORED",
		"tenant alpha     2     250MiB      1200         0B         120MiB",
		"tenant beta      1     0B          599.9999999  0B         0B",
		"client 10.0.0.9  0     0B          0            4GiB       4GiB!",
		"PERSISTED: what the client's ended jobs' persist-after-job values hold",
		"STORED: its live jobs' bytes on their nodes (USED SIZE) and PERSISTED, against the byte quota",
		"STORED !: past the byte quota: the nodes refuse the client's jobs' puts",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status does not show %q:\n%s", want, out)
		}
	}
	st.Clients, st.QuotaBytes, st.QuotaMbps = st.Clients[:1], 0, 0
	if out, _ := stdoutOf(t, func() int { printStatus(statusViewAt(st, controller.DefaultPrices())); return 0 }); strings.Contains(out, "per client") {
		t.Errorf("one client and no quota: status shows the clients:\n%s", out)
	}
	if v := statusViewAt(&wire.ClusterStatus{}, controller.DefaultPrices()); v.Clients == nil {
		t.Error("json clients null; want []")
	}
	// status --help describes the section (a new user's check found it
	// did not).
	for _, want := range []string{"Allotted per client", "--max-mbps-per-client", "PERSISTED", "STORED", `"tenant NAME"`, `"operator ADDR"`} {
		if !strings.Contains(statusHelp, want) {
			t.Errorf("status --help does not say %q", want)
		}
	}
}

// TestStatusShowsClientsWithNoJobs (a new user's trial, 2026-12-08): a
// client whose jobs have all ended, whose persisted values hold it past
// the byte quota, is listed with them though no job is: before, plain
// status said "no jobs" only, and the operator could not see why the
// client's registrations were refused (--json showed it).
func TestStatusShowsClientsWithNoJobs(t *testing.T) {
	st := &wire.ClusterStatus{Clients: []wire.ClientHold{{Client: "client 10.0.0.9", PersistedBytes: 76 << 20, StoredBytes: 76 << 20, OverQuota: true}},
		QuotaBytes: 64 << 20}
	out, _ := stdoutOf(t, func() int { printStatus(statusViewAt(st, controller.DefaultPrices())); return 0 })
	for _, want := range []string{"no jobs", "allotted per client (quota per client: 64MiB):", "client 10.0.0.9  0     0B          0           76MiB      76MiB!"} {
		if !strings.Contains(out, want) {
			t.Errorf("status does not show %q:\n%s", want, out)
		}
	}
}
