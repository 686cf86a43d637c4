package main

// The control plane runs over mutual TLS (internal/pki): `pocket up` and
// `pocket controller` create a cluster CA and one certificate per role in
// DATA/tls (DATA is --data-dir, else $POCKET_DATA_DIR, else ~/.pocket) and
// serve with the controller's certificate; every command that talks to the
// controller presents the certificate of the role it needs from a TLS
// directory (--tls-dir, else $POCKET_TLS_DIR, else DATA/tls when it holds a
// CA). Plain TCP only with --insecure, on both sides.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/internal/pki"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// Environment variables of the TLS settings.
const (
	// envTLSDir: the TLS directory (pki.EnvTLSDir).
	envTLSDir = pki.EnvTLSDir
	// envDataDir is where `pocket up` and `pocket controller` keep the
	// cluster CA when --data-dir is not given.
	envDataDir = "POCKET_DATA_DIR"
	// envInsecure: plain TCP, as --insecure (pki.EnvInsecure); a
	// --tls-dir given wins over it.
	envInsecure = pki.EnvInsecure
)

// insecureFromEnv is pki.InsecureFromEnv.
var insecureFromEnv = pki.InsecureFromEnv

// tlsSubdir is the directory under DATA holding the CA and certificates.
const tlsSubdir = "tls"

// What --insecure gives up, for the commands that serve the control plane
// and for those that talk to it.
const (
	insecureServeHelp = "serve the control plane over plain TCP instead of mutual TLS, for tests and benchmarks on one machine:\n" +
		"nothing is encrypted and no certificate is checked, so anyone who reaches the port can register jobs and read the\n" +
		"cluster's status, job tokens cross the network in the clear, and only the cluster secret's proofs guard node\n" +
		"registration and drains; nodes and commands need --insecure too"
	insecureHelp = "talk to the controller over plain TCP (one started with --insecure), for tests and benchmarks:\n" +
		"nothing is encrypted and the controller is not authenticated, so whoever answers at the address sees what is sent, job tokens included"
)

// errNoTLS: no TLS directory was given and the default has no CA.
var errNoTLS = errors.New("no TLS credentials for the controller: export " + envTLSDir +
	"=DIR as pocket up prints it, or give --tls-dir DIR (a directory from pocket cert issue); " +
	"--insecure (or $" + envInsecure + "=1) for a cluster started with --insecure")

// defaultDataDir is $POCKET_DATA_DIR, else ~/.pocket.
func defaultDataDir() (string, error) {
	if d := os.Getenv(envDataDir); d != "" {
		return d, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no data directory: give --data-dir DIR or set %s (%v)", envDataDir, err)
	}
	return filepath.Join(home, ".pocket"), nil
}

const dataDirHelp = "directory for the cluster CA and certificates (DIR/" + tlsSubdir + "), created mode 0700 " +
	"(default $" + envDataDir + ", else ~/.pocket)"

// tlsFlags are a control-plane client's TLS flags.
type tlsFlags struct {
	dir      string
	insecure bool
}

func (f *tlsFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&f.dir, "tls-dir", "", "directory with the cluster CA (ca.pem) and this command's certificate, as pocket up or pocket cert issue made it\n"+
		"(default $"+envTLSDir+", else "+tlsSubdir+"/ in $"+envDataDir+" or ~/.pocket)")
	fs.BoolVar(&f.insecure, "insecure", false, insecureHelp+" (default $"+envInsecure+"=1)")
	addFlagCheck(fs, func() error {
		if f.insecure && f.dir != "" {
			return errors.New("--insecure and --tls-dir: give one")
		}
		if f.insecure || f.dir != "" || flagGiven(fs, "insecure") {
			return nil
		}
		env, err := insecureFromEnv()
		f.insecure = env
		return err
	})
}

// resolve returns the TLS directory to use, "" with --insecure.
func (f *tlsFlags) resolve() (string, error) {
	dir := f.dir
	if dir == "" {
		dir = os.Getenv(envTLSDir)
	}
	if f.insecure {
		if f.dir != "" {
			return "", errors.New("--insecure and --tls-dir: give one")
		}
		return "", nil
	}
	if dir != "" {
		return dir, nil
	}
	data, err := defaultDataDir()
	if err != nil {
		return "", errNoTLS
	}
	dir = filepath.Join(data, tlsSubdir)
	if _, err := os.Stat(filepath.Join(dir, pki.CAFile)); err != nil {
		return "", errNoTLS
	}
	return dir, nil
}

// config returns the client TLS configuration with the certificate of the
// first of roles that the directory holds (ROLE.pem), nil with --insecure.
func (f *tlsFlags) config(roles ...pki.Role) (*tls.Config, error) {
	dir, err := f.resolve()
	if err != nil || dir == "" {
		return nil, err
	}
	return memberConfig(dir, roles...)
}

// memberConfig loads the first member of dir named after one of roles.
func memberConfig(dir string, roles ...pki.Role) (*tls.Config, error) {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		// Not "run pocket cert issue --out FILE" (a new user's trial).
		why := "not a directory"
		if err != nil {
			why = "no such directory"
		}
		return nil, fmt.Errorf("TLS directory %s: %s: give the directory pocket up printed (--tls-dir or $%s), "+
			"holding the cluster CA (ca.pem) and this command's certificate", dir, why, envTLSDir)
	}
	var names []string
	for _, r := range roles {
		name := pki.Members[r]
		if _, err := os.Stat(filepath.Join(dir, name+".pem")); err == nil {
			return pki.ClientConfig(dir, name)
		}
		names = append(names, name+".pem")
	}
	if !slices.Contains(roles, pki.RoleClient) {
		if _, err := os.Stat(filepath.Join(dir, pki.Members[pki.RoleClient]+".pem")); err == nil {
			// A tenant's directory: its holder is not to get an operator's
			// certificate put there (a new user's trial was told to).
			return nil, fmt.Errorf("%w (want %s): it holds a client's (a tenant's), and this command is the operator's: "+
				"point --tls-dir or $%s at the operator's directory", &noMemberError{dir}, strings.Join(names, " or "), envTLSDir)
		}
	}
	return nil, fmt.Errorf("%w (want %s): run pocket cert issue --role %s --out %s where the cluster CA is",
		&noMemberError{dir}, strings.Join(names, " or "), roles[0], dir)
}

// noMemberError: a TLS directory holds none of the certificates a
// command may present.
type noMemberError struct{ dir string }

func (e *noMemberError) Error() string {
	return e.dir + " holds no certificate for this command"
}

// tlsHint adds what to check to a controller call's error when TLS and
// plain TCP are mixed up (which otherwise reads as EOF) or the two sides
// are not of one CA.
func tlsHint(err error, insecure bool) error {
	var header tls.RecordHeaderError
	var verify *tls.CertificateVerificationError
	var op *net.OpError
	var answer *wire.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &answer): // the controller answered: the transport works
		return err
	case errors.Is(err, syscall.ECONNREFUSED): // not TLS's doing: ctlHint says what to do
		return err
	case errors.Is(err, metaclient.ErrUnresponsive): // no transport mix-up: a stopped or cut-off controller
		return fmt.Errorf("%w (with several controllers, list them all in --controller or $%s: calls move on to the active one)", err, metaclient.EnvController)
	case insecure:
		return fmt.Errorf("%w (with --insecure or $%s=1: is the controller serving TLS? then drop --insecure, unset $%s, and use its certificates)", err, envInsecure, envInsecure)
	case errors.As(err, &header) && header.RecordHeader[0] == wire.Magic0 && header.RecordHeader[1] == wire.Magic1:
		// Pocket's own frames: a plain controller, or a node's data
		// port, which speak the same header (an operator's trial was
		// told --insecure when it had named a node).
		return fmt.Errorf("%w (the server at this address speaks pocket's protocol over plain TCP: a controller started with --insecure "+
			"(give --insecure too), or a storage node's data port (give the controller's address))", err)
	case errors.As(err, &header):
		return fmt.Errorf("%w (the server at this address does not speak TLS, nor pocket's protocol: is it the controller's address?)", err)
	case errors.Is(err, pki.ErrNotController):
		return fmt.Errorf("%w (the server at this address is not the cluster's controller: it presents another member's certificate; "+
			"check --controller and $%s)", err, metaclient.EnvController)
	case errors.As(err, &verify):
		return fmt.Errorf("%w (the controller's certificate is not from the CA in the TLS directory, or does not name the address dialled: "+
			"use the directory its pocket up printed, or start it with --host NAME)", err)
	case errors.As(err, &op) && op.Op == "remote error":
		return fmt.Errorf("%w (the controller refused this certificate: is the TLS directory from this cluster's CA? pocket up prints %s)", err, envTLSDir)
	}
	return err
}

// ctlError is a controller call's error with what to do next: where the
// controller address came from when nothing listens there (ctlHint), and
// what to check when TLS and plain TCP are mixed up (tlsHint).
func ctlError(err error, addrFlag string, insecure bool) error {
	return ctlHint(tlsHint(err, insecure), addrFlag)
}

// unreachable reports whether err says the controller could not be reached
// at all (it refused the connection, or the call's time ran out): a
// command that has waited ctlRetryFor for it then reports it, rather than
// waiting as long again for its next call. Before, job register with a
// size hint (the hints' check, then the registration) and job deregister
// (the job's allotment, then the deregistration) took twice the wait (a
// new user's trial: 6 s for the 3 s the README gives).
func unreachable(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, context.DeadlineExceeded)
}

// ctlHint adds, to an error of a controller that refused the connection,
// where its address came from (--controller, $POCKET_CONTROLLER or the
// default) and how to start or name one; to one that did not answer in
// time, that it may be frozen, overloaded or cut off (before: a bare
// "context deadline exceeded", a new user's trial with a frozen one).
func ctlHint(err error, addrFlag string) error {
	from := "the default address; $" + metaclient.EnvController + " is not set"
	switch {
	case addrFlag != "":
		from = "from --controller"
	case os.Getenv(metaclient.EnvController) != "":
		from = "from $" + metaclient.EnvController
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w (the controller at %s, %s, did not answer in time: it is frozen, overloaded or cut off "+
			"from here; its nodes serve the jobs' values for up to three quarters of their lease, about 25 s by default, "+
			"without it)", err, ctlAddr(addrFlag), from)
	case !errors.Is(err, syscall.ECONNREFUSED):
		return err
	}
	return fmt.Errorf("%w (no controller at %s, %s: if this cluster's controller stopped, start it again on its data "+
		"directory (its nodes keep the jobs' values meanwhile and serve them, to clients holding a job's map, for up "+
		"to three quarters of their lease, about 25 s by default); "+
		"else start a cluster with pocket up, or give the address of a running controller with --controller ADDR or export %s=ADDR)",
		err, ctlAddr(addrFlag), from, metaclient.EnvController)
}

// serverTLS prepares DATA/tls for a controller listening on listen (the
// CA, every role's certificate, the controller's covering the hosts it is
// reached by) and returns the controller's TLS configuration and the
// directory's absolute path.
func serverTLS(data, listen string, extraHosts []string) (*tls.Config, string, error) {
	data, err := filepath.Abs(data) // printed, and handed to nodes
	if err != nil {
		return nil, "", err
	}
	dir := filepath.Join(data, tlsSubdir)
	hosts, err := certHosts(listen, extraHosts)
	if err != nil {
		return nil, "", err
	}
	if err := state.CheckParents(dir); err != nil {
		// Refused before anything is created in the data directory.
		return nil, "", fmt.Errorf("data directory: %w", err)
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, "", fmt.Errorf("data directory: %w", err)
	}
	if err := pki.Init(dir, hosts); err != nil {
		return nil, "", err
	}
	if err := completeMembers(dir, hosts); err != nil {
		return nil, "", err
	}
	cfg, err := pki.ServerConfig(dir, pki.Members[pki.RoleController])
	return cfg, dir, err
}

// completeMembers issues what a directory made earlier lacks: a member
// certificate missing (an interrupted init), or a controller certificate
// that has expired or does not name every one of hosts (the controller
// now listens elsewhere). The new controller certificate keeps the names
// of the old one.
func completeMembers(dir string, hosts []string) error {
	var ca *pki.CA
	loadCA := func() (*pki.CA, error) {
		if ca != nil {
			return ca, nil
		}
		c, err := pki.LoadCA(dir)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
		ca = c
		return ca, nil
	}
	for _, r := range []pki.Role{pki.RoleController, pki.RoleNode, pki.RoleOperator, pki.RoleClient} {
		name := pki.Members[r]
		want := []string(nil)
		if r == pki.RoleController {
			want = hosts
		}
		cert, err := readCert(filepath.Join(dir, name+".pem"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		missing := missingHosts(cert, want)
		if cert != nil && len(missing) == 0 && time.Now().Before(cert.NotAfter) {
			continue
		}
		if cert != nil {
			want = append(certNames(cert), missing...)
		}
		c, err := loadCA()
		if err != nil {
			return err
		}
		if err := c.IssueTo(dir, r, name, want); err != nil {
			return err
		}
	}
	return nil
}

// missingHosts returns the hosts cert is not valid for (all of them for
// no certificate).
func missingHosts(cert *x509.Certificate, hosts []string) []string {
	var out []string
	for _, h := range hosts {
		if cert == nil || cert.VerifyHostname(h) != nil {
			out = append(out, h)
		}
	}
	return out
}

func certNames(cert *x509.Certificate) []string {
	names := slices.Clone(cert.DNSNames)
	for _, ip := range cert.IPAddresses {
		names = append(names, ip.String())
	}
	return names
}

// readCert parses the first certificate of a PEM file.
func readCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no certificate", path)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cert, nil
}

// certHosts is what the controller's certificate names: the host of its
// listen address (every address and the name of this machine when it
// listens on all of them), localhost for a loopback address, and extra.
func certHosts(listen string, extra []string) ([]string, error) {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %w", listen, err)
	}
	var hosts []string
	ip := net.ParseIP(host)
	switch {
	case host == "" || (ip != nil && ip.IsUnspecified()):
		hosts = append(hosts, "localhost")
		if name, err := os.Hostname(); err == nil && name != "" {
			hosts = append(hosts, name)
		}
		addrs, err := net.InterfaceAddrs()
		if err != nil {
			return nil, fmt.Errorf("this machine's addresses: %w", err)
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLinkLocalUnicast() {
				hosts = append(hosts, n.IP.String())
			}
		}
	case ip != nil && ip.IsLoopback():
		hosts = append(hosts, host, "localhost")
	default:
		hosts = append(hosts, host)
	}
	for _, h := range extra {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	slices.Sort(hosts)
	return slices.Compact(hosts), nil
}

// hostList is a repeatable flag of host names or addresses, each value
// possibly a comma-separated list.
type hostList []string

func (h *hostList) String() string { return strings.Join(*h, ",") }

func (h *hostList) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*h = append(*h, v)
		}
	}
	return nil
}
