package main

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/internal/pki"
)

func init() {
	register("cert", "SUBCOMMAND", "control-plane certificates from the cluster CA", runCert)
	registerSub("cert issue", "--role node|operator|client --out DIR", "issue a certificate for a node, an operator or a client")
}

func runCert(args []string) int {
	if code, ok := parentCommand("cert", args); ok {
		return code
	}
	return runCertIssue(args[1:])
}

// certIssue is one `pocket cert issue`.
type certIssue struct {
	role   string
	name   string
	tenant string
	out    string
	// tenantGiven: --tenant was on the command line (an empty one is
	// refused, not taken as no tenant).
	tenantGiven bool
	data        string
	hosts       hostList
	validity    time.Duration
}

func runCertIssue(args []string) int {
	fs := newFlagSet("cert issue")
	var c certIssue
	fs.StringVar(&c.role, "role", "", "role the certificate grants: node (register and heartbeat), operator (status, drain, jobs), client (a job's register, map, deregister)")
	fs.StringVar(&c.name, "name", "", "member name: the files are NAME.pem and NAME-key.pem (default: the role, which is the name the commands look for)")
	fs.StringVar(&c.tenant, "tenant", "", "client role: the tenant the certificate's holder is, its certificate name (default: the member name); over TLS\n"+
		"each tenant's jobs are sized from its own profiles (pocket job profile TENANT/NAME): give each tenant its own")
	fs.StringVar(&c.out, "out", "", "directory to write ca.pem, NAME.pem and NAME-key.pem to (created mode 0700; copy it to the host that uses it)")
	fs.StringVar(&c.data, "data-dir", "", "data directory of the pocket up or pocket controller whose CA signs (its "+tlsSubdir+"/ holds ca-key.pem)\n(default $"+envDataDir+", else ~/.pocket)")
	fs.Var(&c.hosts, "host", "host name or address of the holder, repeatable or comma-separated; written into the certificate to tell members apart")
	fs.DurationVar(&c.validity, "validity", pki.DefaultValidity, "how long the certificate is valid (at most until the CA expires)")
	if _, code, ok := parseFlags(fs, args, 0, 0); !ok {
		return code
	}
	fs.Visit(func(f *flag.Flag) { c.tenantGiven = c.tenantGiven || f.Name == "tenant" })
	if _, err := c.check(); err != nil {
		return usageError("cert issue", err)
	}
	if err := c.run(); err != nil {
		return fail("cert issue: %v", err)
	}
	return 0
}

func (c *certIssue) check() (pki.Role, error) {
	role := pki.Role(c.role)
	if _, ok := pki.Members[role]; !ok || role == pki.RoleController {
		// The controller's certificate is made by pocket up and pocket
		// controller, for the addresses they listen on.
		return "", fmt.Errorf("--role %q: want node, operator or client", c.role)
	}
	if c.out == "" {
		return "", errors.New("--out DIR is required: the directory to write the certificate to")
	}
	if c.validity <= 0 {
		return "", fmt.Errorf("--validity %v: want a positive duration", c.validity)
	}
	if c.name == "" {
		c.name = pki.Members[role]
	}
	if err := pki.CheckMemberName(c.name); err != nil {
		return "", fmt.Errorf("--name %q: want a file name (NAME.pem and NAME-key.pem are written in --out): %w", c.name, err)
	}
	if c.tenantGiven && c.tenant == "" {
		return "", errors.New(`--tenant "": name the tenant (or leave --tenant out: the certificate's name is then the member name)`)
	}
	if c.tenant != "" && role != pki.RoleClient {
		return "", fmt.Errorf("--tenant %q: only a client certificate names a tenant", c.tenant)
	}
	if role == pki.RoleClient {
		if err := c.checkTenant(); err != nil {
			return "", err
		}
	}
	return role, nil
}

// checkTenant checks the tenant a client certificate will name: --tenant,
// else --name (its common name then). A member's name (any case) is
// refused, but for the default "client" (every client.pem pocket up and
// pocket controller make is that tenant) when --tenant does not ask for it;
// so is a name the controller would not take as its label (it would hash
// it, and the tenant shown here would not be the one it uses).
func (c *certIssue) checkTenant() error {
	flag, cn := "--tenant", c.tenant
	if cn == "" {
		flag, cn = "--name", c.name
	}
	byDefault := flag == "--name" && cn == pki.Members[pki.RoleClient]
	for _, member := range pki.Members {
		if strings.EqualFold(cn, member) && !byDefault {
			return fmt.Errorf("%s %q: the name of a member of the cluster: a client certificate so named would be that tenant; choose another", flag, cn)
		}
	}
	if controller.TenantLabel(cn) != cn {
		return fmt.Errorf("%s %q: a tenant's name is 1 to %d letters, digits, '.', '_' and '-', starting with a letter or digit",
			flag, cn, controller.MaxTenantLabel)
	}
	return nil
}

func (c *certIssue) run() error {
	role, err := c.check()
	if err != nil {
		return err
	}
	caDir, err := c.caDir()
	if err != nil {
		return err
	}
	ca, err := pki.LoadCA(caDir)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s holds no cluster CA: give --data-dir of the pocket up or pocket controller that made it "+
			"(or export %s=DIR/%s, as pocket up prints it)", caDir, envTLSDir, tlsSubdir)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", caDir, err)
	}
	cn := c.name
	if c.tenant != "" {
		cn = c.tenant
	}
	certPEM, keyPEM, err := ca.Issue(role, cn, c.hosts, c.validity)
	if err != nil {
		return err
	}
	certFile, err := c.write(ca, certPEM, keyPEM)
	if err != nil {
		return err
	}
	cert, err := readCert(certFile)
	if err != nil {
		return err
	}
	c.report(role, cert)
	return nil
}

// caDir is where the signing CA is: DATA/tls of --data-dir; without it,
// $POCKET_TLS_DIR when that holds the CA's key (pocket up prints it to
// export: a new user's trial issued a tenant's certificate with it set,
// and was told ~/.pocket/tls had no CA), else DATA/tls of the default data
// directory.
func (c *certIssue) caDir() (string, error) {
	data := c.data
	if data == "" {
		if d := os.Getenv(envTLSDir); d != "" {
			if _, err := os.Stat(filepath.Join(d, pki.CAKeyFile)); err == nil {
				return d, nil
			}
		}
		var err error
		if data, err = defaultDataDir(); err != nil {
			return "", err
		}
	}
	return filepath.Join(data, tlsSubdir), nil
}

// write puts the CA's certificate and the member's files in --out,
// refusing to replace a member's files.
func (c *certIssue) write(ca *pki.CA, certPEM, keyPEM []byte) (string, error) {
	if err := os.MkdirAll(c.out, 0o700); err != nil {
		return "", err
	}
	certFile := filepath.Join(c.out, c.name+".pem")
	keyFile := filepath.Join(c.out, c.name+"-key.pem")
	for _, f := range []string{certFile, keyFile} {
		if _, err := os.Lstat(f); err == nil {
			return "", fmt.Errorf("%s exists: remove it or choose another --out or --name", f)
		}
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
	if old, err := os.ReadFile(filepath.Join(c.out, pki.CAFile)); err == nil && string(old) != string(caPEM) {
		return "", fmt.Errorf("%s holds another CA's certificate: choose another --out", filepath.Join(c.out, pki.CAFile))
	}
	if err := os.WriteFile(filepath.Join(c.out, pki.CAFile), caPEM, 0o644); err != nil {
		return "", err
	}
	if err := writeNew(keyFile, keyPEM, 0o600); err != nil {
		return "", err
	}
	if err := writeNew(certFile, certPEM, 0o644); err != nil {
		_ = os.Remove(keyFile)
		return "", err
	}
	return certFile, nil
}

// writeNew creates path, which must not exist, with mode and b.
func writeNew(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
	}
	return err
}

// article is "an" before a word starting with a vowel, else "a".
func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}

// report prints what was issued and how its holder uses it.
func (c *certIssue) report(role pki.Role, cert *x509.Certificate) {
	who := fmt.Sprintf("%q", c.name)
	if cn := cert.Subject.CommonName; role == pki.RoleClient {
		who = fmt.Sprintf("for tenant %q", cn)
	}
	fmt.Printf("issued %s %s certificate %s valid until %s in %s (%s, %s.pem, %s-key.pem; keep the key private)\n",
		article(string(role)), role, who, cert.NotAfter.UTC().Format(time.DateOnly), c.out, pki.CAFile, c.name, c.name)
	if role == pki.RoleClient {
		fmt.Printf("over TLS its jobs are tenant %q's: sized from that tenant's own profiles, which it reads with pocket job profile NAME\n",
			cert.Subject.CommonName)
	}
	if c.name != pki.Members[role] {
		fmt.Printf("note: the pocket commands look for %s.pem in a TLS directory: rename the files to use them there", pki.Members[role])
		if role == pki.RoleClient {
			fmt.Print(" (--tenant names a tenant and keeps the file name)")
		}
		fmt.Println()
	}
	switch role {
	case pki.RoleNode:
		// On every address, giving clients the certificate's host: the
		// host's name may not resolve to an address of its own (NAT).
		host := "HOST"
		if len(c.hosts) > 0 {
			host = c.hosts[0]
		}
		fmt.Printf("copy %s and the cluster secret file to the node's host (e.g. scp -r %s %s:), then there:\n"+
			"  pocket node --controller CONTROLLER --listen %s --advertise %s --tls-dir %s --secret-file FILE\n%s",
			c.out, c.out, host, net.JoinHostPort("0.0.0.0", nodeDefaultPort), net.JoinHostPort(host, nodeDefaultPort),
			filepath.Base(c.out), nodePortNote)
	default:
		fmt.Printf("use it with:\n  %s\n", exportTLSDir(c.out))
	}
}

// exportTLSDir is the shell line that points the commands at dir, made
// absolute so that it works from any directory (a new user's trial got
// "export POCKET_TLS_DIR=alice").
func exportTLSDir(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return "export " + envTLSDir + "=" + dir
}
