package main

// The end-to-end test of issue 11 items 1 and 4 on the command line: a
// cluster from `pocket up` over mutual TLS, its limits set by flags, and a
// node joining with a certificate from `pocket cert issue`.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/internal/pki"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/pocket"
	"github.com/pocketstore/pocket/wire"
)

var upTLSDir = regexp.MustCompile(`export POCKET_TLS_DIR=(\S+)`)

// dataTLS tells whether put and get (data.go, through pocket.Dial) take
// the TLS flags the other commands take, and so reach a TLS controller.
func dataTLS(t *testing.T, bin string, env []string) bool {
	t.Helper()
	out, errOut, _ := pocketRun(t, bin, env, "", "put", "-h") // help on stdout; older builds: stderr
	return strings.Contains(out+errOut, "-tls-dir")
}

// awaitOutput waits for re in a running command's output and returns its
// first group.
func awaitOutput(t *testing.T, out *syncBuffer, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the output:\n%s", re, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// statusOf runs `pocket status --json` with args.
func statusOf(t *testing.T, bin string, env []string, args ...string) statusJSON {
	t.Helper()
	out, errOut, code := pocketRun(t, bin, env, "", append([]string{"status", "--json"}, args...)...)
	var st statusJSON
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("status %v: exit %d: %s %s", args, code, out, errOut)
	}
	return st
}

// registerCLI runs `pocket job register NAME --json` and returns the job
// id and token.
func registerCLI(t *testing.T, bin string, env []string, name string) (string, string) {
	t.Helper()
	reg := registerJSON(t, bin, env, name)
	return reg.JobID, reg.Token
}

// registerJSON runs `pocket job register NAME --json` and returns what it
// printed.
func registerJSON(t *testing.T, bin string, env []string, name string) jobMapJSON {
	t.Helper()
	out, errOut, code := pocketRun(t, bin, env, "", "job", "register", name, "--json")
	var reg jobMapJSON
	if code != 0 || json.Unmarshal([]byte(out), &reg) != nil || reg.Token == "" {
		t.Fatalf("job register %s: exit %d: %s %s", name, code, out, errOut)
	}
	return reg
}

// TestMutualTLSCluster starts `pocket up` and checks that its controller
// serves mutual TLS only (a plain-TCP client and a client without a
// certificate are refused), that the commands work with the TLS directory
// up prints and present the role each needs (a job through the SDK, status,
// drain), that a node certificate from `pocket cert issue` lets another
// `pocket node` join, that the controller's limits are the flags' (the job
// limit named in the error) and the nodes' are passed on, and that status
// counts every job and pages through them on request.
func TestMutualTLSCluster(t *testing.T) {
	bin := buildPocketBinary(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	secretFile := filepath.Join(dir, "secret")
	base := cleanEnv("HOME=" + filepath.Join(dir, "home"))
	const maxJobs = 125
	up, ctl, upOut := pocketStart(t, bin, base, upReady, "up", "--listen", "127.0.0.1:0", "--nodes", "1", "--dram", "16MiB",
		"--data-dir", data, "--secret-file", secretFile, "--max-jobs", fmt.Sprint(maxJobs), "--register-burst", "500",
		"--node-idle-timeout", "3m")
	tlsDir := awaitOutput(t, upOut, upTLSDir)
	if tlsDir != filepath.Join(data, tlsSubdir) {
		t.Fatalf("up prints %s=%s, want its data directory's %s", envTLSDir, tlsDir, tlsSubdir)
	}
	checkTLSFiles(t, tlsDir)
	checkUpNodeArgs(t, up.Process.Pid, tlsDir)
	env := append(slices.Clone(base), "POCKET_CONTROLLER="+ctl, envTLSDir+"="+tlsDir)

	t.Run("refused without a certificate", func(t *testing.T) {
		checkRefusals(t, bin, base, ctl, tlsDir)
	})
	awaitActiveNodes(t, bin, env, 1)

	jobID, tok := registerCLI(t, bin, env, "tls-job")
	t.Run("put and get through the SDK", func(t *testing.T) {
		sdkPutGet(t, ctl, tlsDir, jobID, tok)
	})
	t.Run("put and get on the command line", func(t *testing.T) {
		if !dataTLS(t, bin, base) {
			t.Skip("pocket put has no --tls-dir yet: tools/pocket/data.go does not pass TLS settings to pocket.Dial")
		}
		withTok := append(slices.Clone(env), "POCKET_TOKEN="+tok)
		if _, errOut, code := pocketRun(t, bin, withTok, "cli value", "put", jobID, "cli", "-"); code != 0 {
			t.Fatalf("put: exit %d: %s", code, errOut)
		}
		if got, errOut, code := pocketRun(t, bin, withTok, "", "get", jobID, "cli"); code != 0 || got != "cli value" {
			t.Fatalf("get: exit %d, %q: %s", code, got, errOut)
		}
	})

	// A node on "another host": its own directory from cert issue.
	nodeDir := filepath.Join(t.TempDir(), "node-b")
	issueCert(t, bin, base, data, "node", "", nodeDir)
	if _, err := os.Stat(filepath.Join(nodeDir, pki.CAKeyFile)); err == nil {
		t.Error("cert issue copied the CA key")
	}
	_, nodeB, _ := pocketStart(t, bin, base, nodeReady, "node", "--listen", "127.0.0.1:0", "--dram", "16MiB",
		"--controller", ctl, "--tls-dir", nodeDir, "--secret-file", secretFile)
	awaitActiveNodes(t, bin, env, 2)

	t.Run("issued client certificates", func(t *testing.T) {
		issuedClients(t, bin, base, ctl, data)
	})
	t.Run("status pages and limits", func(t *testing.T) {
		statusAndLimits(t, bin, env, ctl, tlsDir, maxJobs)
	})
	withTok := append(slices.Clone(env), "POCKET_TOKEN="+tok)
	if out, errOut, code := pocketRun(t, bin, withTok, "", "job", "deregister", jobID); code != 0 {
		t.Fatalf("job deregister with the client certificate: exit %d: %s %s", code, out, errOut)
	}
	if out, errOut, code := pocketRun(t, bin, env, "", "node", "drain", nodeB, "--wait=false", "--secret-file", secretFile); code != 0 {
		t.Fatalf("node drain with the operator certificate: exit %d: %s %s", code, out, errOut)
	}
}

// issueCert runs pocket cert issue.
func issueCert(t *testing.T, bin string, env []string, data, role, name, out string) {
	t.Helper()
	args := []string{"cert", "issue", "--role", role, "--host", "127.0.0.1", "--out", out, "--data-dir", data}
	if name != "" {
		args = append(args, "--name", name)
	}
	if msg, errOut, code := pocketRun(t, bin, env, "", args...); code != 0 {
		t.Fatalf("cert issue --role %s: exit %d: %s %s", role, code, msg, errOut)
	}
}

// checkTLSFiles: up made the CA and a certificate per role, keys private.
func checkTLSFiles(t *testing.T, dir string) {
	t.Helper()
	for _, name := range []string{"ca", "controller", "node", "operator", "client"} {
		for f, mode := range map[string]os.FileMode{name + ".pem": 0o644, name + "-key.pem": 0o600} {
			fi, err := os.Stat(filepath.Join(dir, f))
			if err != nil || fi.Mode().Perm() != mode {
				t.Errorf("%s: %v %v, want mode %#o", f, fi, err, mode)
			}
		}
	}
}

// checkUpNodeArgs: up's nodes got the TLS directory's path and the node
// limit given to up, and no --insecure.
func checkUpNodeArgs(t *testing.T, upPid int, tlsDir string) {
	t.Helper()
	kids := procChildren(t, upPid)
	if len(kids) != 1 {
		t.Fatalf("up has %d child processes, want its node", len(kids))
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", kids[0]))
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	if i := slices.Index(args, "--tls-dir"); i < 0 || i+1 == len(args) || args[i+1] != tlsDir || slices.Contains(args, "--insecure") {
		t.Errorf("up's node runs as %q; want --tls-dir %s", args, tlsDir)
	}
	if i := slices.Index(args, "--idle-timeout"); i < 0 || i+1 == len(args) || args[i+1] != "3m0s" {
		t.Errorf("up's node runs as %q; want --idle-timeout 3m0s from --node-idle-timeout", args)
	}
}

// checkRefusals: plain TCP, a client with no certificate, and a command
// with no TLS settings get nowhere.
func checkRefusals(t *testing.T, bin string, base []string, ctl, tlsDir string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	plain := metaclient.New(ctl, metaclient.Options{Logger: quiet})
	defer plain.Close()
	if _, err := plain.RegisterJob(ctx, "plain", wire.JobHints{}); err == nil {
		t.Error("a plain-TCP client registered a job")
	}
	caPEM, err := os.ReadFile(filepath.Join(tlsDir, pki.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	anon := metaclient.New(ctl, metaclient.Options{TLS: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13}, Logger: quiet})
	defer anon.Close()
	if _, err := anon.RegisterJob(ctx, "anon", wire.JobHints{}); err == nil {
		t.Error("a TLS client without a certificate registered a job")
	}
	env := append(slices.Clone(base), "POCKET_CONTROLLER="+ctl)
	if _, errOut, code := pocketRun(t, bin, env, "", "status", "--insecure"); code == 0 || !strings.Contains(errOut, "--insecure") {
		t.Errorf("status --insecure against the TLS controller: exit %d, %q", code, errOut)
	}
	if _, errOut, code := pocketRun(t, bin, env, "", "status"); code == 0 || !strings.Contains(errOut, envTLSDir) {
		t.Errorf("status with no TLS settings: exit %d, %q; want a pointer to %s", code, errOut, envTLSDir)
	}
}

// tlsMapController is the SDK's controller adapter (pocket/dial.go) over a
// metaclient speaking TLS: what pocket.Dial does once it has a TLS option.
type tlsMapController struct{ mc *metaclient.Client }

func (c tlsMapController) RegisterJob(ctx context.Context, name string, h pocket.Hints) (pocket.Map, error) {
	pm, err := c.mc.RegisterJob(ctx, name, wire.JobHints{Lambdas: uint32(h.Lambdas), CapacityBytes: h.CapacityBytes})
	return sdkMap(pm), err
}

func (c tlsMapController) DeregisterJob(ctx context.Context, job string, tok []byte) (pocket.DropResult, error) {
	_, err := c.mc.DeregisterJob(ctx, job, tok)
	return pocket.DropResult{}, err
}

func (c tlsMapController) GetMap(ctx context.Context, job string, tok []byte) (pocket.Map, error) {
	pm, err := c.mc.GetMap(ctx, job, tok)
	return sdkMap(pm), err
}

func (c tlsMapController) Close() error { return c.mc.Close() }

func sdkMap(pm *wire.PlacementMap) pocket.Map {
	m := pocket.Map{Job: pm.Job, Token: pm.Token, Tier: pocket.Tier(pm.Tier), Epoch: pm.Epoch}
	for _, n := range pm.Nodes {
		m.Nodes = append(m.Nodes, pocket.Node{Addr: n.Addr, Weight: n.Weight})
	}
	return m
}

// sdkPutGet opens the job with the client certificate up made and puts
// and gets a value through the SDK.
func sdkPutGet(t *testing.T, ctl, tlsDir, jobID, tokHex string) {
	tc, err := pki.ClientConfig(tlsDir, "client")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := token.Parse(tokHex)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := pocket.NewStore(tlsMapController{metaclient.New(ctl, metaclient.Options{TLS: tc, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})}, pocket.Config{})
	defer s.Close()
	j, err := s.OpenJob(ctx, jobID, tok)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Put(ctx, "k", []byte("over tls")); err != nil {
		t.Fatal(err)
	}
	if v, err := j.Get(ctx, "k"); err != nil || string(v) != "over tls" {
		t.Fatalf("get: %q, %v", v, err)
	}
}

// issuedClients: a client certificate from pocket cert issue registers
// jobs but cannot read the status, and the controller reads the role from
// the certificate, not the file's name.
func issuedClients(t *testing.T, bin string, base []string, ctl, data string) {
	clientDir := filepath.Join(t.TempDir(), "client")
	issueCert(t, bin, base, data, "client", "", clientDir)
	clientEnv := append(slices.Clone(base), "POCKET_CONTROLLER="+ctl, envTLSDir+"="+clientDir)
	registerCLI(t, bin, clientEnv, "issued-client")
	// (It is a tenant's: pointed to the operator's directory, not told to
	// issue an operator's certificate into it, as a new user's trial was.)
	if _, errOut, code := pocketRun(t, bin, clientEnv, "", "status"); code == 0 || !strings.Contains(errOut, "this command is the operator's") ||
		strings.Contains(errOut, "--role operator") {
		t.Errorf("status with a client directory: exit %d, %q; want a pointer to the operator's directory", code, errOut)
	}
	// A tenant's certificate keeps the file name the commands look for
	// and carries the tenant as its name; it registers jobs.
	aliceDir := filepath.Join(t.TempDir(), "alice")
	if msg, errOut, code := pocketRun(t, bin, base, "", "cert", "issue", "--role", "client", "--tenant", "alice",
		"--out", aliceDir, "--data-dir", data); code != 0 || !strings.Contains(msg, `tenant "alice"`) {
		t.Fatalf("cert issue --tenant alice: exit %d: %s %s", code, msg, errOut)
	}
	if cert, err := readCert(filepath.Join(aliceDir, "client.pem")); err != nil || cert.Subject.CommonName != "alice" {
		t.Fatalf("alice's client.pem: %v; want the certificate name alice", err)
	}
	aliceEnv := append(slices.Clone(base), "POCKET_CONTROLLER="+ctl, envTLSDir+"="+aliceDir)
	registerCLI(t, bin, aliceEnv, "alices-job")
	// Her hints cannot be checked (she may not read the status): a
	// registration the controller refuses says why, with no note above it
	// that the hints were not checked (a new user's trial read that as
	// nobody having looked at them); one it takes carries the note.
	if _, errOut, code := pocketRun(t, bin, aliceEnv, "", "job", "register", "too-big", "--capacity", "1GiB"); code == 0 ||
		strings.Contains(errOut, "not checked") || !strings.Contains(errOut, "job register: ") {
		t.Errorf("a refused hinted registration: exit %d, %q; want the refusal alone", code, errOut)
	}
	if _, errOut, code := pocketRun(t, bin, aliceEnv, "", "job", "register", "hinted", "--peak-mbps", "1"); code != 0 ||
		!strings.Contains(errOut, "note: the hints were not checked against the cluster") {
		t.Errorf("a hinted registration taken: exit %d, %q; want the note", code, errOut)
	}
	// A directory holding the operator's certificate alone registers a
	// job and puts to it (put wanted client.pem: a new user's trial).
	opDir := filepath.Join(t.TempDir(), "op")
	issueCert(t, bin, base, data, "operator", "", opDir)
	opEnv := append(slices.Clone(base), "POCKET_CONTROLLER="+ctl, envTLSDir+"="+opDir)
	opJob, opTok := registerCLI(t, bin, opEnv, "operators-job")
	if _, errOut, code := pocketRun(t, bin, append(opEnv, "POCKET_TOKEN="+opTok), "v", "put", opJob, "k", "-"); code != 0 {
		t.Errorf("put with the operator's certificate alone: exit %d: %s", code, errOut)
	}
	// A client certificate saved as operator.pem is still a client's.
	fake := filepath.Join(t.TempDir(), "fake-operator")
	// (Named operator.pem, for tenant fake: a client certificate whose
	// own name is a member's is refused, as it would be that tenant.)
	if _, errOut, code := pocketRun(t, bin, base, "", "cert", "issue", "--role", "client", "--name", "operator", "--tenant", "fake",
		"--host", "127.0.0.1", "--out", fake, "--data-dir", data); code != 0 {
		t.Fatalf("cert issue --name operator --tenant fake: exit %d: %s", code, errOut)
	}
	fakeEnv := append(slices.Clone(base), "POCKET_CONTROLLER="+ctl, envTLSDir+"="+fake)
	if _, errOut, code := pocketRun(t, bin, fakeEnv, "", "status"); code == 0 || !strings.Contains(errOut, "operator") {
		t.Errorf("status with a client certificate named operator: exit %d, %q", code, errOut)
	}
}

// statusAndLimits registers jobs up to --max-jobs in one burst (more than
// the default --register-burst), checks that status counts them all and
// lists the first 100 and that --jobs lists every one, and that the next
// registration names the limit.
func statusAndLimits(t *testing.T, bin string, env []string, ctl, tlsDir string, maxJobs int) {
	tc, err := pki.ClientConfig(tlsDir, "client")
	if err != nil {
		t.Fatal(err)
	}
	mc := metaclient.New(ctl, metaclient.Options{TLS: tc, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer mc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	have := int(statusOf(t, bin, env).JobCount)
	for i := have; i < maxJobs; i++ {
		if _, err := mc.RegisterJob(ctx, fmt.Sprintf("bulk-%d", i), wire.JobHints{}); err != nil {
			t.Fatalf("registration %d of %d in one burst: %v", i+1, maxJobs, err)
		}
	}
	st := statusOf(t, bin, env)
	if st.JobCount != uint64(maxJobs) || len(st.Jobs) != 100 || st.NodeCount != 2 {
		t.Errorf("status: %d jobs counted, %d listed, %d nodes; want %d, 100, 2", st.JobCount, len(st.Jobs), st.NodeCount, maxJobs)
	}
	all := statusOf(t, bin, env, "--jobs")
	ids := map[string]bool{}
	for _, j := range all.Jobs {
		ids[j.JobID] = true
	}
	if len(all.Jobs) != maxJobs || len(ids) != maxJobs {
		t.Errorf("status --jobs: %d jobs, %d distinct; want %d", len(all.Jobs), len(ids), maxJobs)
	}
	text, _, code := pocketRun(t, bin, env, "", "status")
	if code != 0 || !strings.Contains(text, fmt.Sprintf("%d job(s), the first 100 listed: pocket status --jobs lists all", maxJobs)) {
		t.Errorf("status text: exit %d:\n%s", code, text)
	}
	_, errOut, code := pocketRun(t, bin, env, "", "job", "register", "one-too-many")
	// A tenant (the client certificate) is told the limit, not the count.
	if code == 0 || !strings.Contains(errOut, "as many jobs as it takes (MaxJobs, --max-jobs)") || strings.Contains(errOut, fmt.Sprint(maxJobs)) {
		t.Errorf("registration over --max-jobs: exit %d, %q; want the limit named, not the count", code, errOut)
	}
}

// TestExportTLSDirIsAbsolute: the line cert issue prints for a relative
// --out names the directory absolutely (a new user's trial got "export
// POCKET_TLS_DIR=alice", which works only from where it was issued).
func TestExportTLSDirIsAbsolute(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := exportTLSDir("alice"), "export "+envTLSDir+"="+filepath.Join(wd, "alice"); got != want {
		t.Fatalf("exportTLSDir(alice) = %q, want %q", got, want)
	}
}
