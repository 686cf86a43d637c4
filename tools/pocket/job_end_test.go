package main

import (
	"strings"
	"testing"

	"github.com/pocketstore/pocket/internal/nettest"
	"github.com/pocketstore/pocket/wire"
)

// TestJobEndByTheOperator: `pocket job end JOBID` ends a job without its
// token, signed with the cluster secret: its allotment goes back and its
// nodes are told to drop its data (a dead one is named, exit 0); a job
// not live exits 1, saying it ended or was never registered; no secret
// exits 1 saying how to give it. Before, a job whose token was lost could
// not be deregistered at all.
func TestJobEndByTheOperator(t *testing.T) {
	ctl, addr := drainController(t, "0123456789abcdef-job-end-secret")
	node := nettest.RefusedAddr(t)
	if _, err := ctl.RegisterNode(&wire.NodeRegister{Addr: node, Cores: 2,
		Tiers: []wire.TierStat{{Kind: uint8(wire.TierDRAM), CapacityBytes: 1 << 30, Mbps: 8000}}}); err != nil {
		t.Fatal(err)
	}
	m, err := ctl.RegisterJob("lost-token", wire.JobHints{PeakMbps: 5000})
	if err != nil {
		t.Fatal(err)
	}
	end := func(args ...string) (string, int) {
		t.Helper()
		var code int
		errOut, _ := stderrOf(t, func() int {
			var out string
			out, code = stdoutOf(t, func() int { return runJobEnd(append([]string{"--insecure", "--controller", addr}, args...)) })
			t.Log(out)
			return code
		})
		return errOut, code
	}
	t.Setenv("POCKET_SECRET", "")
	if out, code := end(m.Job); code != 1 || !strings.Contains(out, "no cluster secret") {
		t.Fatalf("end without the secret: exit %d, %q", code, out)
	}
	// A user who lost the token meets job end in deregister's errors.
	t.Setenv(envToken, "")
	if out, code := stderrOf(t, func() int { return runJobDeregister([]string{"--insecure", "--controller", addr, m.Job}) }); code != 1 ||
		!strings.Contains(out, "the operator ends the job with pocket job end "+m.Job) {
		t.Fatalf("deregister without a token: exit %d, %q", code, out)
	}
	t.Setenv("POCKET_SECRET", "another-secret-0123456789abcdef")
	if out, code := end(m.Job); code != 1 || !strings.Contains(out, "is not this cluster's") {
		t.Fatalf("end with another cluster's secret: exit %d, %q", code, out)
	}
	t.Setenv("POCKET_SECRET", "0123456789abcdef-job-end-secret")
	var stdout string
	errOut, _ := stderrOf(t, func() int {
		var code int
		stdout, code = stdoutOf(t, func() int { return runJobEnd([]string{"--insecure", "--controller", addr, "--json", m.Job}) })
		if code != 1 { // the node is not listening: a live node that did not drop
			t.Errorf("end with a node that cannot be reached: exit %d", code)
		}
		return code
	})
	if !strings.Contains(stdout, `"job_id": "`+m.Job+`"`) || !strings.Contains(errOut, "did not drop the job's data") {
		t.Fatalf("end: stdout %q, stderr %q", stdout, errOut)
	}
	if st := ctl.Status(); len(st.Jobs) != 0 {
		t.Fatalf("the ended job is still listed: %+v", st.Jobs)
	}
	if out, code := end(m.Job); code != 1 || !strings.Contains(out, "has ended already") {
		t.Fatalf("ending it again: exit %d, %q", code, out)
	}
	if out, code := end("never-1"); code != 1 || !strings.Contains(out, "no job never-1 is registered") {
		t.Fatalf("ending a job never registered: exit %d, %q", code, out)
	}
}

// TestDrainWithAnotherClustersSecret: a drain ordered with a secret that
// is not the cluster's says so. Before, a new user's trial read the
// refusal's "bad token" alone.
func TestDrainWithAnotherClustersSecret(t *testing.T) {
	ctl, addr := drainController(t, "0123456789abcdef-drain-secret-0")
	node := nettest.RefusedAddr(t)
	if _, err := ctl.RegisterNode(&wire.NodeRegister{Addr: node, Cores: 2,
		Tiers: []wire.TierStat{{Kind: uint8(wire.TierDRAM), CapacityBytes: 1 << 30, Mbps: 8000}}}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("POCKET_SECRET", "another-secret-0123456789abcdef")
	out, code := stderrOf(t, func() int { return runDrain([]string{"--insecure", "--controller", addr, "--wait=false", node}) })
	if code != 1 || !strings.Contains(out, "is not this cluster's") {
		t.Fatalf("drain with another cluster's secret: exit %d, %q", code, out)
	}
}
