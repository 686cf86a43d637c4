package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"path/filepath"
	"testing"
)

// handshake runs a TLS handshake over a pipe between a client with
// ClientConfig(dir, "client") dialling 127.0.0.1 and a server presenting
// pair, and returns the client's error.
func handshake(t *testing.T, dir string, pair tls.Certificate) error {
	t.Helper()
	cli, err := ClientConfig(dir, "client")
	if err != nil {
		t.Fatal(err)
	}
	cli.ServerName = "127.0.0.1"
	pool, _, err := loadCACert(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv := &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13}
	a, b := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s := tls.Server(b, srv)
		_ = s.Handshake()
		s.Close()
	}()
	c := tls.Client(a, cli)
	err = c.Handshake()
	c.Close()
	<-done
	return err
}

func memberDir(t *testing.T) (string, *CA) {
	t.Helper()
	dir := t.TempDir()
	ca, err := NewCA("test", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]Role{"controller": RoleController, "node": RoleNode, "operator": RoleOperator, "client": RoleClient} {
		if err := ca.IssueTo(dir, r, name, []string{"127.0.0.1"}); err != nil {
			t.Fatal(err)
		}
	}
	return dir, ca
}

func loadPair(t *testing.T, dir, name string) tls.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

// TestClientRefusesMemberAsController: a client of the control plane
// completes a handshake with the controller's certificate only; another
// member's certificate of the same CA, naming the address dialled, is
// refused (before the fix any member could pose as the controller).
func TestClientRefusesMemberAsController(t *testing.T) {
	dir, _ := memberDir(t)
	if err := handshake(t, dir, loadPair(t, dir, "controller")); err != nil {
		t.Fatalf("controller refused: %v", err)
	}
	for _, name := range []string{"node", "operator", "client"} {
		if err := handshake(t, dir, loadPair(t, dir, name)); err == nil {
			t.Errorf("a %s certificate passed as the controller's", name)
		}
	}
}

// TestClientRefusesServerAuthMember: a member certificate that may serve
// TLS (as every certificate issued before the fix could) but carries no
// controller role is refused with ErrNotController.
func TestClientRefusesServerAuthMember(t *testing.T) {
	dir, ca := memberDir(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := template("node-old", 0)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}
	tmpl.URIs = append(tmpl.URIs, RoleURI(RoleNode))
	tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	err = handshake(t, dir, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key})
	if !errors.Is(err, ErrNotController) {
		t.Fatalf("a node certificate with server use: %v, want ErrNotController", err)
	}
}

// TestOnlyControllerServes: only the controller's certificate may serve
// TLS; every member's may authenticate a client.
func TestOnlyControllerServes(t *testing.T) {
	dir, ca := memberDir(t)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	for name, r := range map[string]Role{"controller": RoleController, "node": RoleNode, "operator": RoleOperator, "client": RoleClient} {
		leaf, err := x509.ParseCertificate(loadPair(t, dir, name).Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		if (err == nil) != (r == RoleController) {
			t.Errorf("%s: verify for server use: %v", name, err)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s: verify for client use: %v", name, err)
		}
	}
}
