// Package pki is the control plane's small certificate authority: a
// cluster CA (ECDSA P-256) that `pocket up` creates, and the certificates
// it issues to the controller, the nodes, the operators and the jobs'
// clients, each naming its role. The controller serves TLS 1.3 and requires
// a client certificate signed by the CA; the role in the certificate
// decides which messages the peer may send (package controller, roles.go).
// With mutual TLS nothing recorded on the wire can be replayed, and a job's
// token travels only inside an authenticated, encrypted connection.
//
// # Roles
//
// A certificate's roles are URI subject alternative names of the form
// "pocket:role:NAME" (RoleURI); a certificate may carry several. The
// roles: controller (its server certificate), node, operator (drain,
// cluster status) and client (a job's SDK or CLI).
//
// # Files
//
// A directory holds the CA's certificate (ca.pem), optionally its key
// (ca-key.pem, only where certificates are issued), and for each member
// NAME.pem (its certificate) and NAME-key.pem (its key, mode 0600). Keys
// are PKCS #8 PEM.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Role is what a certificate's holder may do on the control plane.
type Role string

// Roles.
const (
	RoleController Role = "controller"
	RoleNode       Role = "node"
	RoleOperator   Role = "operator"
	RoleClient     Role = "client"
)

// roleScheme is the URI scheme of role SANs: "pocket:role:NAME".
const roleScheme = "pocket"

// RoleURI is the SAN that names role r.
func RoleURI(r Role) *url.URL { return &url.URL{Scheme: roleScheme, Opaque: "role:" + string(r)} }

// RolesOf returns the roles a certificate names.
func RolesOf(cert *x509.Certificate) []Role {
	var out []Role
	for _, u := range cert.URIs {
		if u.Scheme == roleScheme && strings.HasPrefix(u.Opaque, "role:") {
			out = append(out, Role(strings.TrimPrefix(u.Opaque, "role:")))
		}
	}
	return out
}

// File names in a directory.
const (
	CAFile    = "ca.pem"
	CAKeyFile = "ca-key.pem"
)

// DefaultValidity is how long issued certificates (and the CA) last.
const DefaultValidity = 365 * 24 * time.Hour

// CA is a certificate authority that can issue certificates.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// ErrNoCAKey means a directory has the CA's certificate but not its key.
var ErrNoCAKey = errors.New("pki: the directory holds no CA key (" + CAKeyFile + ")")

// NewCA creates a self-signed CA named name, valid for validity (0:
// DefaultValidity).
func NewCA(name string, validity time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: CA key: %w", err)
	}
	tmpl, err := template(name, validity)
	if err != nil {
		return nil, err
	}
	tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.MaxPathLenZero = true, true, true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("pki: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

func template(name string, validity time.Duration) (*x509.Certificate, error) {
	if validity <= 0 {
		validity = DefaultValidity
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("pki: serial: %w", err)
	}
	now := time.Now()
	return &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name, Organization: []string{"pocket"}},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(validity)}, nil
}

// Issue returns a certificate and key (PEM) for name with role r. hosts
// (IP addresses or DNS names) become SANs for a server certificate.
func (ca *CA) Issue(r Role, name string, hosts []string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: key: %w", err)
	}
	tmpl, err := template(name, validity)
	if err != nil {
		return nil, nil, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = extKeyUsage(r)
	tmpl.URIs = []*url.URL{RoleURI(r)}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	if notAfter := ca.Cert.NotAfter; tmpl.NotAfter.After(notAfter) {
		tmpl.NotAfter = notAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: certificate for %s: %w", name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: key for %s: %w", name, err)
	}
	return pemBlock("CERTIFICATE", der), pemBlock("PRIVATE KEY", keyDER), nil
}

// extKeyUsage is what a certificate of role r may be used for: every
// member authenticates as a TLS client; only the controller serves TLS.
func extKeyUsage(r Role) []x509.ExtKeyUsage {
	if r == RoleController {
		return []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}
	}
	return []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// Save writes the CA's certificate and key to dir (created 0700).
func (ca *CA) Save(dir string) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		return fmt.Errorf("pki: CA key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := writeFile(filepath.Join(dir, CAFile), pemBlock("CERTIFICATE", ca.Cert.Raw), 0o644); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, CAKeyFile), pemBlock("PRIVATE KEY", keyDER), 0o600)
}

// IssueTo issues a certificate for name with role r and writes it to
// dir/NAME.pem and dir/NAME-key.pem.
func (ca *CA) IssueTo(dir string, r Role, name string, hosts []string) error {
	if err := CheckMemberName(name); err != nil {
		return err
	}
	certPEM, keyPEM, err := ca.Issue(r, name, hosts, 0)
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, name+".pem"), certPEM, 0o644); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, name+"-key.pem"), keyPEM, 0o600)
}

func writeFile(path string, b []byte, mode os.FileMode) error {
	if err := os.WriteFile(path, b, mode); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}

// CheckMemberName refuses a member name that is not a plain file name in
// a TLS directory (NAME.pem, NAME-key.pem): empty, ".", "..", with a
// path separator, or the CA's own "ca" or "ca-key".
func CheckMemberName(name string) error {
	if name == "" || strings.ContainsAny(name, `/\`) || name == "ca" || name == "ca-key" || name == "." || name == ".." {
		return fmt.Errorf("pki: %q is not a member name", name)
	}
	return nil
}

// CAID names dir's CA certificate: the first 8 bytes of the SHA-256 of
// its DER encoding, in hex. Controllers of one cluster on etcd must share
// their CA (controller.Config.CAID).
func CAID(dir string) (string, error) {
	_, cert, err := loadCACert(dir)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:8]), nil
}

// LoadCA reads the CA (certificate and key) from dir.
func LoadCA(dir string) (*CA, error) {
	_, cert, err := loadCACert(dir)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoCAKey
	}
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("pki: %s: no PEM block", CAKeyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", CAKeyFile, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("pki: %s: not an ECDSA key", CAKeyFile)
	}
	return &CA{Cert: cert, Key: key}, nil
}

func loadCACert(dir string) (*x509.CertPool, *x509.Certificate, error) {
	b, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("pki: %s: no certificate", CAFile)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %s: %w", CAFile, err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool, cert, nil
}

// load reads dir's CA pool and the key pair of name.
func load(dir, name string) (*x509.CertPool, tls.Certificate, error) {
	pool, _, err := loadCACert(dir)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	if err := CheckMemberName(name); err != nil {
		return nil, tls.Certificate{}, err
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem"))
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("pki: %s: %w", name, err)
	}
	return pool, pair, nil
}

// ServerConfig is the controller's TLS configuration from dir: its
// certificate NAME.pem, and client certificates required and verified
// against the CA. TLS 1.3 only.
func ServerConfig(dir, name string) (*tls.Config, error) {
	pool, pair, err := load(dir, name)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13}, nil
}

// ClientConfig is a member's TLS configuration from dir: its certificate
// NAME.pem, presented to the controller, and the CA to verify the
// controller's certificate by. The server must present a certificate of
// the CA that names the address dialled and carries the controller role
// (RoleURI(RoleController)): another member's certificate of the same CA
// is refused with an error wrapping ErrNotController. TLS 1.3 only.
func ClientConfig(dir, name string) (*tls.Config, error) {
	pool, pair, err := load(dir, name)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS13,
		VerifyConnection: VerifyController}, nil
}

// ErrNotController means the server's certificate, though of the cluster
// CA, does not carry the controller role: another member poses as the
// controller.
var ErrNotController = errors.New("pki: the server's certificate is not a controller's")

// VerifyController is a tls.Config.VerifyConnection for the clients of
// the control plane: after the chain and the name are verified, the
// server's certificate must carry the controller role. It fails with an
// error wrapping ErrNotController naming the roles it carries, and when
// the chain was not verified (a configuration with InsecureSkipVerify).
func VerifyController(cs tls.ConnectionState) error {
	if len(cs.VerifiedChains) == 0 || len(cs.PeerCertificates) == 0 {
		return fmt.Errorf("%w: its chain was not verified", ErrNotController)
	}
	leaf := cs.PeerCertificates[0]
	roles := RolesOf(leaf)
	for _, r := range roles {
		if r == RoleController {
			return nil
		}
	}
	return fmt.Errorf("%w: %q carries roles %v", ErrNotController, leaf.Subject.CommonName, roles)
}

// Members is the member name Init issues for each role.
var Members = map[Role]string{RoleController: "controller", RoleNode: "node", RoleOperator: "operator", RoleClient: "client"}

// Init prepares dir for a local cluster, as `pocket up` does: when it holds
// no CA yet, it creates one (DefaultValidity) and issues one certificate
// per role, named as in Members, the controller's for hosts (its listen
// addresses: IPs or names). A directory that has a CA is left as it is.
// Afterwards ServerConfig(dir, "controller") and ClientConfig(dir, NAME)
// load them.
func Init(dir string, hosts []string) error {
	if _, err := os.Stat(filepath.Join(dir, CAFile)); err == nil {
		return nil
	}
	ca, err := NewCA("pocket cluster", 0)
	if err != nil {
		return err
	}
	if err := ca.Save(dir); err != nil {
		return err
	}
	for _, r := range []Role{RoleController, RoleNode, RoleOperator, RoleClient} {
		var h []string
		if r == RoleController {
			h = hosts
		}
		if err := ca.IssueTo(dir, r, Members[r], h); err != nil {
			return err
		}
	}
	return nil
}
