package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/internal/pki"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/netio"
)

// leafRoles returns the roles of a client configuration's certificate.
func leafRoles(t *testing.T, dir string, roles ...pki.Role) []pki.Role {
	t.Helper()
	tc, err := memberConfig(dir, roles...)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(tc.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return pki.RolesOf(leaf)
}

func TestTLSDirResolution(t *testing.T) {
	data := t.TempDir()
	t.Setenv(envDataDir, data)
	t.Setenv(envTLSDir, "")
	if _, err := (&tlsFlags{}).resolve(); !errors.Is(err, errNoTLS) {
		t.Fatalf("no CA anywhere: %v, want errNoTLS", err)
	}
	if _, _, err := serverTLS(data, "127.0.0.1:0", nil); err != nil {
		t.Fatal(err)
	}
	def := filepath.Join(data, tlsSubdir)
	for _, c := range []struct {
		name string
		f    tlsFlags
		env  string
		want string
		bad  bool
	}{
		{name: "default data dir", want: def},
		{name: "env", env: "/env/tls", want: "/env/tls"},
		{name: "flag over env", f: tlsFlags{dir: "/flag/tls"}, env: "/env/tls", want: "/flag/tls"},
		{name: "insecure", f: tlsFlags{insecure: true}, env: "/env/tls", want: ""},
		{name: "insecure and a dir", f: tlsFlags{insecure: true, dir: "/flag/tls"}, bad: true},
	} {
		t.Setenv(envTLSDir, c.env)
		got, err := c.f.resolve()
		if (err != nil) != c.bad || got != c.want {
			t.Errorf("%s: %q, %v; want %q (error %v)", c.name, got, err, c.want, c.bad)
		}
	}
	// A job command prefers the client certificate; status has only the
	// operator's.
	if r := leafRoles(t, def, pki.RoleClient, pki.RoleOperator); !slices.Equal(r, []pki.Role{pki.RoleClient}) {
		t.Errorf("job commands present %v", r)
	}
	clientOnly := t.TempDir()
	for _, f := range []string{pki.CAFile, "client.pem", "client-key.pem"} {
		b, err := os.ReadFile(filepath.Join(def, f))
		if err != nil {
			t.Fatal(err)
		}
		writeMode(t, filepath.Join(clientOnly, f), string(b), 0o600)
	}
	if r := leafRoles(t, clientOnly, pki.RoleClient, pki.RoleOperator); !slices.Equal(r, []pki.Role{pki.RoleClient}) {
		t.Errorf("client directory presents %v", r)
	}
	_, err := memberConfig(clientOnly, pki.RoleOperator)
	if err == nil || !strings.Contains(err.Error(), "point --tls-dir or $"+envTLSDir+" at the operator's directory") {
		t.Errorf("status with a client-only directory: %v; want a pointer to the operator's directory", err)
	}
	empty := t.TempDir()
	if _, err := memberConfig(empty, pki.RoleOperator); err == nil || !strings.Contains(err.Error(), "pocket cert issue --role operator") {
		t.Errorf("status with an empty directory: %v; want a pointer to pocket cert issue", err)
	}
	// A file is not a directory: not "pocket cert issue --out FILE" (a
	// new user's trial).
	file := filepath.Join(empty, "hostname")
	writeMode(t, file, "x", 0o600)
	if _, err := memberConfig(file, pki.RoleOperator); err == nil || !strings.Contains(err.Error(), file+": not a directory") ||
		strings.Contains(err.Error(), "cert issue") {
		t.Errorf("status with a file as its TLS directory: %v; want it named not a directory", err)
	}
}

func TestCertHosts(t *testing.T) {
	h, err := certHosts("127.0.0.1:7000", []string{"ctl.example", " 10.0.0.9", "", "localhost"})
	if want := []string{"10.0.0.9", "127.0.0.1", "ctl.example", "localhost"}; err != nil || !slices.Equal(h, want) {
		t.Errorf("certHosts(127.0.0.1) = %v, %v; want %v", h, err, want)
	}
	var hl hostList
	if err := hl.Set("a.example, 10.0.0.1"); err != nil || hl.Set("b") != nil || !slices.Equal(hl, hostList{"a.example", "10.0.0.1", "b"}) {
		t.Errorf("--host a.example,10.0.0.1 --host b: %v", hl)
	}
	all, err := certHosts(":7000", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"localhost", "127.0.0.1"} {
		if !slices.Contains(all, want) {
			t.Errorf("certHosts(:7000) = %v, want %s in it", all, want)
		}
	}
	if _, err := certHosts("no-port", nil); err == nil {
		t.Error("an address without a port was accepted")
	}
}

// TestServerTLSCompletes: a data directory made for one address serves
// another after up or controller reissue the controller's certificate
// (keeping its old names and the CA), and a lost member certificate is
// issued again.
func TestServerTLSCompletes(t *testing.T) {
	data := t.TempDir()
	dir := filepath.Join(data, tlsSubdir)
	if _, _, err := serverTLS(data, "127.0.0.1:0", nil); err != nil {
		t.Fatal(err)
	}
	ca1, _ := os.ReadFile(filepath.Join(dir, pki.CAFile))
	if err := os.Remove(filepath.Join(dir, "operator.pem")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := serverTLS(data, "10.1.2.3:7000", []string{"ctl.example"}); err != nil {
		t.Fatal(err)
	}
	ca2, _ := os.ReadFile(filepath.Join(dir, pki.CAFile))
	if string(ca1) != string(ca2) {
		t.Fatal("the CA changed")
	}
	cert, err := readCert(filepath.Join(dir, "controller.pem"))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"127.0.0.1", "localhost", "10.1.2.3", "ctl.example"} {
		if err := cert.VerifyHostname(h); err != nil {
			t.Errorf("controller certificate: %v", err)
		}
	}
	if r := leafRoles(t, dir, pki.RoleOperator); !slices.Equal(r, []pki.Role{pki.RoleOperator}) {
		t.Errorf("reissued operator certificate has roles %v", r)
	}
	// Without the CA key nothing can be issued, and up says so.
	if err := os.Remove(filepath.Join(dir, pki.CAKeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := serverTLS(data, "10.9.9.9:7000", nil); !errors.Is(err, pki.ErrNoCAKey) {
		t.Errorf("new address without the CA key: %v", err)
	}
}

func TestCertIssue(t *testing.T) {
	data := t.TempDir()
	if _, _, err := serverTLS(data, "127.0.0.1:0", nil); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "node-b")
	c := certIssue{role: "node", out: out, data: data, hosts: hostList{"10.0.0.2"}, validity: time.Hour}
	if err := c.run(); err != nil {
		t.Fatal(err)
	}
	for f, mode := range map[string]os.FileMode{pki.CAFile: 0o644, "node.pem": 0o644, "node-key.pem": 0o600} {
		fi, err := os.Stat(filepath.Join(out, f))
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v %v, want mode %#o", f, fi, err, mode)
		}
	}
	if _, err := os.Stat(filepath.Join(out, pki.CAKeyFile)); err == nil {
		t.Error("the CA key was copied out")
	}
	if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o700 {
		t.Errorf("--out has mode %#o, want 0700", fi.Mode().Perm())
	}
	cert, err := readCert(filepath.Join(out, "node.pem"))
	if err != nil || cert.VerifyHostname("10.0.0.2") != nil || time.Until(cert.NotAfter) > time.Hour {
		t.Errorf("node certificate: %v, names %v, until %v", err, certNames(cert), cert.NotAfter)
	}
	if r := leafRoles(t, out, pki.RoleNode); !slices.Equal(r, []pki.Role{pki.RoleNode}) {
		t.Errorf("roles %v", r)
	}
	again := c
	if err := again.run(); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("issuing over existing files: %v", err)
	}
	for _, bad := range []certIssue{
		{role: "controller", out: out, data: data, validity: time.Hour},
		{role: "root", out: out, data: data, validity: time.Hour},
		{role: "client", data: data, validity: time.Hour},
		{role: "client", out: t.TempDir(), data: t.TempDir(), validity: time.Hour},
	} {
		if err := bad.run(); err == nil {
			t.Errorf("cert issue %+v succeeded", bad)
		}
	}
}

func TestCtlLimitFlags(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	l := bindCtlLimits(fs)
	if err := fs.Parse([]string{"--max-jobs", "7", "--max-conns-per-peer", "0", "--idle-timeout", "0", "--register-rate", "2.5", "--token-ttl", "1h",
		"--max-bytes-per-client", "1GiB", "--max-mbps-per-client", "2500"}); err != nil {
		t.Fatal(err)
	}
	var cfg controller.Config
	if err := l.apply(&cfg); err != nil {
		t.Fatal(err)
	}
	want := controller.Config{MaxJobs: 7, MaxConnsPerPeer: -1, IdleTimeout: -1, RegisterRate: 2.5, TokenTTL: time.Hour,
		MaxBytesPerClient: 1 << 30, MaxMbpsPerClient: 2500}
	if cfg.MaxJobs != want.MaxJobs || cfg.MaxConnsPerPeer != want.MaxConnsPerPeer || cfg.IdleTimeout != want.IdleTimeout ||
		cfg.RegisterRate != want.RegisterRate || cfg.TokenTTL != want.TokenTTL ||
		cfg.MaxBytesPerClient != want.MaxBytesPerClient || cfg.MaxMbpsPerClient != want.MaxMbpsPerClient {
		t.Errorf("config %+v", cfg)
	}
	// Unset flags leave the controller's defaults.
	if cfg.MaxConns != 0 || cfg.MaxJobsPerClient != 0 || cfg.HandshakeTimeout != 0 || cfg.MaxTokenTTL != 0 {
		t.Errorf("unset flags changed the config: %+v", cfg)
	}
	for _, bad := range [][]string{{"--max-jobs", "0"}, {"--max-conns", "-1"}, {"--idle-timeout", "-1s"}, {"--register-burst", "0"}, {"--token-ttl", "-1h"},
		{"--max-bytes-per-client", "-1"}, {"--max-bytes-per-client", "lots"}, {"--max-mbps-per-client", "-5"}, {"--max-mbps-per-client", "NaN"}} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		l := bindCtlLimits(fs)
		if err := fs.Parse(bad); err != nil {
			t.Fatal(err)
		}
		if err := l.apply(&controller.Config{}); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestNodeLimitFlags(t *testing.T) {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	var l nodeLimits
	l.bind(fs, "node-", "")
	if err := fs.Parse([]string{"--node-idle-timeout", "3m", "--node-max-conns-per-peer", "0", "--node-min-put-rate", "1MiB", "--node-max-unread", "16MiB"}); err != nil {
		t.Fatal(err)
	}
	l.visited(fs, "node-")
	if got, want := l.args(), []string{"--idle-timeout", "3m0s", "--max-conns-per-peer", "0", "--min-put-rate", "1MiB", "--max-unread", "16MiB"}; !slices.Equal(got, want) {
		t.Errorf("up passes its nodes %q, want %q", got, want)
	}
	// The node parses what up passes.
	nfs := flag.NewFlagSet("node", flag.ContinueOnError)
	var n nodeLimits
	n.bind(nfs, "", "")
	if err := nfs.Parse(l.args()); err != nil {
		t.Fatal(err)
	}
	n.visited(nfs, "")
	var cfg netio.Config
	if err := n.apply(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.IdleTimeout != 3*time.Minute || cfg.MaxConnsPerPeer != -1 || cfg.WriteTimeout != 0 || cfg.MinSinkRate != 1<<20 || cfg.MaxOutboundTotal != 16<<20 {
		t.Errorf("node config %+v", cfg)
	}
	for _, flagName := range []string{"node-min-put-rate", "node-min-get-rate", "node-max-unread"} {
		for _, bad := range []string{"fast", "-1", "3GiB"} {
			if bad == "3GiB" && flagName != "node-max-unread" {
				continue // a rate may be that high
			}
			var b nodeLimits
			bfs := flag.NewFlagSet("up", flag.ContinueOnError)
			b.bind(bfs, "node-", "")
			if err := bfs.Parse([]string{"--" + flagName, bad}); err != nil {
				t.Fatal(err)
			}
			b.visited(bfs, "node-")
			err := b.apply(&netio.Config{})
			if err == nil || !strings.Contains(err.Error(), "--"+flagName) {
				t.Errorf("--%s %s: %v, want refused by its name", flagName, bad, err)
			} else if bad == "-1" && !strings.Contains(err.Error(), "must not be negative") {
				t.Errorf("--%s -1: %v, want it to say the value must not be negative", flagName, err)
			}
		}
	}
	var r nodeLimits
	rfs := flag.NewFlagSet("node", flag.ContinueOnError)
	r.bind(rfs, "", "")
	if err := rfs.Parse([]string{"--min-put-rate", "2MiB/s", "--min-get-rate", "0"}); err != nil {
		t.Fatal(err)
	}
	r.visited(rfs, "")
	var rc netio.Config
	if err := r.apply(&rc); err != nil || rc.MinSinkRate != 2<<20 || rc.MinDrainRate != -1 {
		t.Errorf("--min-put-rate 2MiB/s --min-get-rate 0: %d %d %v", rc.MinSinkRate, rc.MinDrainRate, err)
	}
}

func TestTLSHint(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("metaclient: status 127.0.0.1:7000: %w", err) }
	for _, c := range []struct {
		err      error
		insecure bool
		want     string
	}{
		{wrap(io.EOF), true, "drop --insecure"},
		// Pocket's header back: a plain controller or a node's data port
		// (an operator's trial named a node and was told --insecure).
		{wrap(tls.RecordHeaderError{Msg: "tls: first record does not look like a TLS handshake", RecordHeader: [5]byte{'P', 'K', 1, 0x81, 0}}),
			false, "give --insecure too), or a storage node's data port"},
		{wrap(tls.RecordHeaderError{Msg: "tls: first record does not look like a TLS handshake", RecordHeader: [5]byte{'H', 'T', 'T', 'P', '/'}}),
			false, "does not speak TLS, nor pocket's protocol"},
		{wrap(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), false, "not from the CA"},
		{wrap(&net.OpError{Op: "remote error", Err: errors.New("tls: bad certificate")}), false, "refused this certificate"},
		{wrap(io.EOF), false, ""},
		// A stopped controller is no TLS mix-up (a trial was asked "is
		// the controller serving TLS?").
		{wrap(fmt.Errorf("%w (i/o timeout)", metaclient.ErrUnresponsive)), true, "list them all in --controller"},
	} {
		got := tlsHint(c.err, c.insecure)
		if !errors.Is(got, c.err) || (c.want == "") != (got.Error() == c.err.Error()) || !strings.Contains(got.Error(), c.want) {
			t.Errorf("tlsHint(%v, %v) = %v; want %q added", c.err, c.insecure, got, c.want)
		}
	}
	if tlsHint(nil, true) != nil {
		t.Error("a hint without an error")
	}
}

// TestCtlHint: a refused connection names where the controller address
// came from and how to start or name one; other errors pass unchanged,
// and tlsHint adds no TLS advice to a refusal.
func TestCtlHint(t *testing.T) {
	refused := fmt.Errorf("metaclient: status 127.0.0.1:7000: %w", &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)})
	t.Setenv("POCKET_CONTROLLER", "")
	for _, c := range []struct {
		flag, env, want string
	}{
		{"", "", "no controller at 127.0.0.1:7000, the default address; $POCKET_CONTROLLER is not set"},
		{"", "10.0.0.1:7000", "no controller at 10.0.0.1:7000, from $POCKET_CONTROLLER"},
		{"h:1", "10.0.0.1:7000", "no controller at h:1, from --controller"},
	} {
		t.Setenv("POCKET_CONTROLLER", c.env)
		got := ctlError(refused, c.flag, true)
		if !errors.Is(got, syscall.ECONNREFUSED) || !strings.Contains(got.Error(), c.want) ||
			!strings.Contains(got.Error(), "pocket up") || !strings.Contains(got.Error(), "if this cluster's controller stopped, start it again") ||
			strings.Contains(got.Error(), "--insecure") {
			t.Errorf("ctlError(refused, %q) with $POCKET_CONTROLLER=%q:\n%v\nwant %q and what to do, no TLS advice", c.flag, c.env, got, c.want)
		}
	}
	if err := ctlHint(io.EOF, ""); err != io.EOF {
		t.Errorf("ctlHint(EOF) = %v, want EOF unchanged", err)
	}
	// A controller that takes the connection and does not answer (frozen):
	// before, a bare "context deadline exceeded".
	t.Setenv("POCKET_CONTROLLER", "10.0.0.1:7000")
	silent := fmt.Errorf("metaclient: status 10.0.0.1:7000: %w", context.DeadlineExceeded)
	if got := ctlError(silent, "", true); !errors.Is(got, context.DeadlineExceeded) ||
		!strings.Contains(got.Error(), "the controller at 10.0.0.1:7000, from $POCKET_CONTROLLER, did not answer in time: it is frozen") {
		t.Errorf("ctlError(deadline) = %v; want it to say the controller did not answer", got)
	}
}

// TestCertIssueTenant: --tenant names a client certificate's tenant, and
// only a client's, with a name that is its own label and no member's
// (hostile trial: --tenant client joined the tenant of every client.pem
// pocket up makes). --name is a file name in --out: "../../evil" wrote
// outside it.
func TestCertIssueTenant(t *testing.T) {
	for _, c := range []struct {
		role, tenant string
		ok           bool
	}{{"client", "alice", true}, {"client", "team-7.etl", true}, {"operator", "alice", false}, {"node", "alice", false},
		{"client", "a/b", false}, {"client", "-x", false}, {"client", strings.Repeat("x", 21), false}, {"client", "ca", true},
		{"client", "", false}, {"client", "operator", false}, {"client", "client", false}, {"client", "node", false}} {
		ci := certIssue{role: c.role, tenant: c.tenant, tenantGiven: true, out: t.TempDir(), validity: time.Hour}
		_, err := ci.check()
		if (err == nil) != c.ok || (err != nil && !strings.Contains(err.Error(), "--tenant")) {
			t.Errorf("--role %s --tenant %q: %v; want ok %v", c.role, c.tenant, err, c.ok)
		}
	}
	for _, name := range []string{"../../evil", "a/b", "..", "ca"} {
		ci := certIssue{role: "client", name: name, out: t.TempDir(), validity: time.Hour}
		if _, err := ci.check(); err == nil || !strings.Contains(err.Error(), "--name") {
			t.Errorf("--name %q: %v; want refused", name, err)
		}
	}
	// A client certificate's --name is its tenant when --tenant is not
	// given: the same checks (a hostile trial's --role client --name
	// operator joined the operator's name, and a long --name was hashed
	// by the controller while cert issue named it as given).
	for _, c := range []struct {
		name, tenant string
		ok           bool
	}{{"operator", "", false}, {"Node", "", false}, {"CLIENT", "", false}, {"client", "", true}, {"", "", true},
		{"this-is-a-very-long-tenant-name", "", false}, {"operator", "fake", true}, {"bob", "", true}, {"x", "Client", false}} {
		ci := certIssue{role: "client", name: c.name, tenant: c.tenant, tenantGiven: c.tenant != "", out: t.TempDir(), validity: time.Hour}
		if _, err := ci.check(); (err == nil) != c.ok {
			t.Errorf("--role client --name %q --tenant %q: %v; want ok %v", c.name, c.tenant, err, c.ok)
		}
	}
}

// TestCertIssueFindsTheCAInTLSDir: without --data-dir, cert issue signs
// with the CA in $POCKET_TLS_DIR when that holds the CA's key, as pocket
// up prints it to export (a new user's trial was told ~/.pocket/tls held
// no CA); and an operator's command given a tenant's directory says so,
// without telling the tenant to put an operator's certificate there.
func TestCertIssueFindsTheCAInTLSDir(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("HOME", filepath.Join(dir, "home"))
	t.Setenv(envDataDir, "")
	tlsDir := filepath.Join(dir, "data", tlsSubdir)
	if err := pki.Init(tlsDir, []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envTLSDir, tlsDir)
	alice := filepath.Join(dir, "alice")
	ci := certIssue{role: "client", tenant: "alice", tenantGiven: true, out: alice, validity: time.Hour}
	var runErr error
	stdoutOf(t, func() int { runErr = ci.run(); return 0 })
	if runErr != nil {
		t.Fatalf("cert issue --tenant alice with %s=%s: %v", envTLSDir, tlsDir, runErr)
	}
	_, err := memberConfig(alice, pki.RoleOperator)
	if err == nil || !strings.Contains(err.Error(), "this command is the operator's") || strings.Contains(err.Error(), "--role operator") {
		t.Fatalf("an operator's command with a tenant's directory: %v; want told to use the operator's, not to issue one here", err)
	}
}
