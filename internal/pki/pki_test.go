package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestIssueAndLoad(t *testing.T) {
	dir := t.TempDir()
	ca, err := NewCA("test cluster", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	if err := ca.IssueTo(dir, RoleController, "controller", []string{"127.0.0.1", "localhost"}); err != nil {
		t.Fatal(err)
	}
	if err := ca.IssueTo(dir, RoleNode, "node-1", nil); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(dir, "node-1-key.pem")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", st, err)
	}
	loaded, err := LoadCA(dir)
	if err != nil || !loaded.Cert.Equal(ca.Cert) {
		t.Fatalf("load CA: %v", err)
	}
	srv, err := ServerConfig(dir, "controller")
	if err != nil || srv.ClientAuth != tls.RequireAndVerifyClientCert || srv.MinVersion != tls.VersionTLS13 {
		t.Fatalf("server config: %+v %v", srv, err)
	}
	cli, err := ClientConfig(dir, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cli.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if roles := RolesOf(leaf); len(roles) != 1 || roles[0] != RoleNode {
		t.Fatalf("roles %v", roles)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("issued certificate does not verify: %v", err)
	}
	other, _ := NewCA("other", 0)
	op := x509.NewCertPool()
	op.AddCert(other.Cert)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: op}); err == nil {
		t.Fatal("verified against another CA")
	}
	// A member's directory without the CA key cannot issue.
	member := t.TempDir()
	os.WriteFile(filepath.Join(member, CAFile), pemBlock("CERTIFICATE", ca.Cert.Raw), 0o644)
	if _, err := LoadCA(member); !errors.Is(err, ErrNoCAKey) {
		t.Fatalf("load CA without key: %v", err)
	}
	for _, bad := range []string{"", "../x", "a/b", "ca"} {
		if err := ca.IssueTo(dir, RoleClient, bad, nil); err == nil {
			t.Errorf("member name %q accepted", bad)
		}
	}
}

func TestInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	if err := Init(dir, []string{"127.0.0.1", "localhost"}); err != nil {
		t.Fatal(err)
	}
	ca1, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := Init(dir, nil); err != nil { // idempotent: keeps the CA
		t.Fatal(err)
	}
	ca2, _ := os.ReadFile(filepath.Join(dir, CAFile))
	if string(ca1) != string(ca2) {
		t.Fatal("Init replaced an existing CA")
	}
	srv, err := ServerConfig(dir, Members[RoleController])
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(srv.Certificates[0].Certificate[0])
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Fatalf("controller certificate: %v", err)
	}
	for r, name := range Members {
		cfg, err := ClientConfig(dir, name)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(cfg.Certificates[0].Certificate[0])
		if got := RolesOf(c); len(got) != 1 || got[0] != r {
			t.Fatalf("%s: roles %v", name, got)
		}
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("directory mode: %v %v", st.Mode(), err)
	}
}
