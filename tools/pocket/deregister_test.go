package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/internal/nettest"
	"github.com/pocketstore/pocket/wire"
)

// gaveBack finds the allotment a deregistration says it gave back.
var gaveBack = regexp.MustCompile(`gave back its allotment of ([0-9.e+]+) Mb/s and `)

// TestDeregisterDeadNodes: `pocket job deregister` exits 0 when the only
// nodes that did not drop the job's data are dead (one line says so), and
// 1 when a live node did not, naming it. The nodes are registrations
// only, at addresses nothing listens on; they never heartbeat (DeadAfter
// is an hour) and die when the test says.
func TestDeregisterDeadNodes(t *testing.T) {
	bin := buildPocketBinary(t)
	secret := []byte("0123456789abcdef-deregister-secret")
	ctl, err := controller.New(controller.Config{Secret: secret, DeadAfter: time.Hour, ForgetAfter: time.Hour,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	laddr, err := ctl.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	register := func(addr string) {
		t.Helper()
		ack, err := ctl.RegisterNode(&wire.NodeRegister{Addr: addr, Cores: 2,
			Tiers: []wire.TierStat{{Kind: uint8(wire.TierDRAM), CapacityBytes: 1 << 30, Mbps: 8000}}})
		if err != nil || ack.State != wire.NodeActive {
			t.Fatalf("register %s: %+v %v", addr, ack, err)
		}
	}
	deregister := func(m *wire.PlacementMap) (string, string, int) {
		t.Helper()
		env := cleanEnv("POCKET_CONTROLLER="+laddr.String(), envToken+"="+hex.EncodeToString(m.Token))
		return pocketRun(t, bin, env, "", "job", "deregister", "--insecure", m.Job)
	}

	dead := nettest.RefusedAddr(t)
	register(dead)
	m, err := ctl.RegisterJob("on-a-dead-node", wire.JobHints{})
	if err != nil || len(m.Nodes) != 1 {
		t.Fatalf("%+v %v", m, err)
	}
	if err := ctl.SetNodeState(dead, wire.NodeDead); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := deregister(m)
	if code != 0 || !strings.Contains(out, "node "+dead+" is dead: its copy of the job's values went with it, those put with --persist too") {
		t.Fatalf("deregister with its only node dead: exit %d, stdout %q, stderr %q; want 0 and a line on the dead node", code, out, errOut)
	}
	// Nothing is left on a dead node: the output does not say values stay
	// read-only, nor that the dead node "could not be asked" (before: the
	// count's raw error, and the credential).
	if !strings.Contains(out, "no values put with --persist are left: the job's node(s) are dead") ||
		strings.Contains(out, "stay read-only") || strings.Contains(out, "POCKET_CREDENTIAL") || strings.Contains(out, "could not be asked") {
		t.Errorf("deregister with its only node dead: stdout %q; want no values said to stay", out)
	}

	alive, dead2 := nettest.RefusedAddr(t), nettest.RefusedAddr(t)
	register(alive)
	register(dead2)
	m, err = ctl.RegisterJob("dead-and-unreachable", wire.JobHints{PeakMbps: 16000})
	if err != nil || len(m.Nodes) != 2 {
		t.Fatalf("%+v %v", m, err)
	}
	if err := ctl.SetNodeState(dead2, wire.NodeDead); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = deregister(m)
	if code != 1 || !strings.Contains(errOut, "1 node(s) did not drop") || !strings.Contains(errOut, alive) ||
		strings.Contains(errOut, "node dead") || !strings.Contains(out, "node "+dead2+" is dead") {
		t.Fatalf("deregister with a dead node and an unreachable one: exit %d, stdout %q, stderr %q; want 1 naming %s only", code, out, errOut, alive)
	}
	// The persisted values' line names the live node that could not be
	// asked, not the dead one, on one line without the registry's prefix
	// (before: both nodes' errors, "wire: " and a raw newline between).
	var line string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "--persist on the job's live nodes stay read-only (not counted: ") {
			line = l
		}
	}
	if line == "" || !strings.Contains(line, "node "+alive+":") || strings.Contains(line, dead2) || strings.Contains(line, "wire: ") ||
		!strings.Contains(out, "export POCKET_CREDENTIAL=") {
		t.Errorf("deregister with a dead node and an unreachable one: stdout %q; want one line naming only %s, then the credential", out, alive)
	}
}

// TestDeregisterSaysWhetherValuesPersist: job deregister says values put
// with --persist stay read-only, with the credential that reads them,
// only when the job's nodes kept some (a usage request to each node);
// a job that persisted nothing is said to have kept nothing. Before, the
// line and the credential were printed for every job.
func TestDeregisterSaysWhetherValuesPersist(t *testing.T) {
	bin := buildPocketBinary(t)
	_, addr := startHintCluster(t)
	env := cleanEnv("POCKET_CONTROLLER=" + addr)
	for _, persist := range []bool{false, true} {
		out, errOut, code := pocketRun(t, bin, env, "", "job", "register", "--insecure", "--json", "persist-or-not")
		var m jobMapJSON
		if code != 0 || json.Unmarshal([]byte(out), &m) != nil {
			t.Fatalf("job register: exit %d: %s %s", code, out, errOut)
		}
		jenv := append(env, envToken+"="+m.Token)
		put := []string{"put", "--insecure", m.JobID, "k", "-"}
		if persist {
			put = []string{"put", "--insecure", "--persist", m.JobID, "k", "-"}
		}
		if out, errOut, code := pocketRun(t, bin, jenv, "a value", put...); code != 0 {
			t.Fatalf("put: exit %d: %s %s", code, out, errOut)
		}
		out, errOut, code = pocketRun(t, bin, jenv, "", "job", "deregister", "--insecure", m.JobID)
		if code != 0 {
			t.Fatalf("deregister: exit %d: %s %s", code, out, errOut)
		}
		kept := strings.Contains(out, "values put with --persist stay read-only (") && strings.Contains(out, "B on the job's nodes)") &&
			strings.Contains(out, "export POCKET_CREDENTIAL=")
		none := strings.Contains(out, "the job's nodes keep none of its values (none put with --persist is left)") &&
			!strings.Contains(out, "stay read-only") && !strings.Contains(out, "POCKET_CREDENTIAL")
		if persist && !kept || !persist && !none {
			t.Errorf("deregister of a job that persisted %v: %q", persist, out)
		}
		// The allotment given back is the map's at deregistration: a job
		// that grew onto a second node holds its rate split by float32
		// placement weights (CI read 8999.99945736 for a 9000 Mb/s job).
		if got := gaveBack.FindStringSubmatch(out); got == nil {
			t.Errorf("deregister does not say what allotment it gave back: %q", out)
		} else if v, err := strconv.ParseFloat(got[1], 64); err != nil || math.Abs(v-m.AllocMbps) > 0.01 {
			t.Errorf("deregister gave back %s Mb/s; want %s: %q", got[1], mbpsText(m.AllocMbps), out)
		}
		// Deregistered again: it has ended; how to get the credential is
		// said only when the nodes keep some of its values (it was said
		// for every job: a new user's trial), and the credential itself,
		// a secret, is not printed on stderr (another trial).
		// A job whose nodes keep none of its values may have its final map
		// let go by then (the controller's sweep, once their heartbeats
		// say so): "unknown job ... persisted nothing" is right too.
		out, errOut, code = pocketRun(t, bin, jenv, "", "job", "deregister", "--insecure", m.JobID)
		printed := strings.Contains(errOut, `eval "$(pocket job credential --insecure `+m.JobID+`)"`)
		if strings.Contains(errOut, "POCKET_CREDENTIAL=") {
			t.Errorf("second deregister printed the credential, a secret, on stderr: %q", errOut)
		}
		forgotten := !persist && strings.Contains(errOut, "unknown job") && strings.Contains(errOut, "persisted nothing")
		if code != 1 || !forgotten && (!strings.Contains(errOut, "has ended already") || printed != persist ||
			!persist && !strings.Contains(errOut, "nodes keep none of its values")) {
			t.Errorf("second deregister of a job that persisted %v: exit %d, stdout %q, stderr %q", persist, code, out, errOut)
		}
	}
}

// TestUsageFailures: a deregistered job's failed count is told per node
// that could not be asked, the dead nodes' failures left out (their
// values are gone), each on one line without the registry's "wire: ".
func TestUsageFailures(t *testing.T) {
	dead := &wire.Error{Code: wire.CodeUnavailable, Msg: "node 127.0.0.1:7001: dial tcp 127.0.0.1:7001: connect: connection refused"}
	live := &wire.Error{Code: wire.CodeUnavailable, Msg: "node 127.0.0.1:7002: connection lost: EOF"}
	got := usageFailures(errors.Join(dead, live), []string{"127.0.0.1:7001"})
	if len(got) != 1 || strings.Contains(got[0], "wire: ") || strings.Contains(got[0], "\n") || !strings.Contains(got[0], "node 127.0.0.1:7002:") {
		t.Errorf("a dead and a live node failed: %q; want the live one's failure alone, on one line", got)
	}
	if got := usageFailures(errors.Join(dead), []string{"127.0.0.1:7001"}); got != nil {
		t.Errorf("only the dead node failed: %q; want none", got)
	}
	if got := usageFailures(nil, nil); got != nil {
		t.Errorf("no failure: %q", got)
	}
}

// TestDeregisterJSONIsStable: pocket job deregister --json of a job that
// kept a value lists every field, with dead_nodes and failures [] and
// the persisted bytes counted. Before, dead_nodes was null when no node
// was dead (a new user's trial) and persisted_bytes came and went.
func TestDeregisterJSONIsStable(t *testing.T) {
	bin := buildPocketBinary(t)
	_, addr := startHintCluster(t)
	env := cleanEnv("POCKET_CONTROLLER=" + addr)
	out, errOut, code := pocketRun(t, bin, env, "", "job", "register", "--insecure", "--json", "stable-json")
	var m jobMapJSON
	if code != 0 || json.Unmarshal([]byte(out), &m) != nil {
		t.Fatalf("job register: exit %d: %s %s", code, out, errOut)
	}
	jenv := append(env, envToken+"="+m.Token)
	if out, errOut, code := pocketRun(t, bin, jenv, "a value", "put", "--insecure", "--persist", m.JobID, "k", "-"); code != 0 {
		t.Fatalf("put: exit %d: %s %s", code, out, errOut)
	}
	out, errOut, code = pocketRun(t, bin, jenv, "", "job", "deregister", "--insecure", "--json", m.JobID)
	if code != 0 {
		t.Fatalf("deregister --json: exit %d: %s %s", code, out, errOut)
	}
	obj := jsonObject(t, "deregister --json", []byte(out))
	wantKeys(t, "deregister --json", obj, "job_id", "nodes", "failed", "values", "bytes", "dead_nodes", "failures", "message",
		"credential", "unreported", "persisted_counted", "persisted_bytes", "persisted_count_failures", "returned")
	var v deregisterJSON
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	if v.DeadNodes == nil || len(v.DeadNodes) != 0 || v.Failures == nil || len(v.Failures) != 0 || !v.PersistedCounted ||
		v.PersistedBytes <= 0 || v.Message != "" || v.Credential == "" || v.Unreported {
		t.Errorf("deregister --json of a job that kept a value: %+v", v)
	}
	// It says what allotment it gave back (a new user's check found it
	// did not): the one job register printed.
	if r := v.Returned; !r.Known || r.Mbps != m.AllocMbps || r.Bytes != m.AllocBytes || m.AllocMbps <= 0 {
		t.Errorf("deregister --json returned %+v; want the allotment registered, %v Mb/s and %d bytes", r, m.AllocMbps, m.AllocBytes)
	}
}
