package token

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
)

var secret = []byte("0123456789abcdef-test-secret")

// TestMatchesCryptoHMAC checks the hand-rolled HMAC against crypto/hmac for
// short, block-sized and long keys and subjects on both code paths.
func TestMatchesCryptoHMAC(t *testing.T) {
	keys := [][]byte{secret, bytes.Repeat([]byte{7}, 64), bytes.Repeat([]byte{9}, 100)}
	subjects := [][]byte{nil, []byte("sort-1"), bytes.Repeat([]byte("x"), maxInline), bytes.Repeat([]byte("y"), maxInline+1)}
	for _, k := range keys {
		for _, s := range subjects {
			h := hmac.New(sha256.New, k)
			h.Write([]byte{byte(KindJob)})
			h.Write(s)
			want := append([]byte{byte(KindJob)}, h.Sum(nil)...)
			if got := Sign(k, s); !bytes.Equal(got, want) {
				t.Fatalf("key %d bytes, subject %d bytes: tag differs from crypto/hmac", len(k), len(s))
			}
		}
	}
}

func TestSignVerify(t *testing.T) {
	job := []byte("sort-1")
	tok := Sign(secret, job)
	if len(tok) != Len {
		t.Fatalf("len %d, want %d", len(tok), Len)
	}
	if !Verify(secret, job, tok) {
		t.Fatal("valid token refused")
	}
	cases := map[string]func() bool{
		"other job":      func() bool { return Verify(secret, []byte("sort-2"), tok) },
		"other secret":   func() bool { return Verify([]byte("another-secret-value"), job, tok) },
		"truncated":      func() bool { return Verify(secret, job, tok[:Len-1]) },
		"empty":          func() bool { return Verify(secret, job, nil) },
		"admin as job":   func() bool { return Verify(secret, job, SignAdmin(secret, job)) },
		"job as admin":   func() bool { return VerifyAdmin(secret, job, tok) },
		"node as job":    func() bool { return Verify(secret, job, SignNode(secret, string(job))) },
		"kind byte swap": func() bool { b := bytes.Clone(tok); b[0] = byte(KindAdmin); return VerifyAdmin(secret, job, b) },
	}
	for name, f := range cases {
		if f() {
			t.Errorf("%s: accepted", name)
		}
	}
	// Every single-bit flip of the tag is refused.
	for i := 1; i < Len; i++ {
		for bit := 0; bit < 8; bit++ {
			b := bytes.Clone(tok)
			b[i] ^= 1 << bit
			if Verify(secret, job, b) {
				t.Fatalf("tampered byte %d bit %d accepted", i, bit)
			}
		}
	}
	if !VerifyAdmin(secret, job, SignAdmin(secret, job)) {
		t.Fatal("admin token refused")
	}
	if !VerifyNode(secret, "127.0.0.1:7000", SignNode(secret, "127.0.0.1:7000")) ||
		VerifyNode(secret, "127.0.0.1:7001", SignNode(secret, "127.0.0.1:7000")) {
		t.Fatal("node proof check wrong")
	}
}

func TestFormatParse(t *testing.T) {
	tok := Sign(secret, []byte("j-1"))
	got, err := Parse(Format(tok))
	if err != nil || !bytes.Equal(got, tok) {
		t.Fatalf("round trip: %v", err)
	}
	if _, err := Parse("zz"); err == nil {
		t.Fatal("non-hex accepted")
	}
	if _, err := Parse("abcd"); err == nil {
		t.Fatal("short token accepted")
	}
}

func TestSecretFrom(t *testing.T) {
	t.Setenv(EnvSecret, "")
	if _, err := SecretFrom(""); !errors.Is(err, ErrNoSecret) {
		t.Fatalf("no secret: %v", err)
	}
	if _, err := SecretFrom("short"); !errors.Is(err, ErrShortSecret) {
		t.Fatalf("short secret: %v", err)
	}
	t.Setenv(EnvSecret, "from-the-environment-123")
	s, err := SecretFrom("")
	if err != nil || string(s) != "from-the-environment-123" {
		t.Fatalf("env secret: %q %v", s, err)
	}
	s, err = SecretFrom("flag-wins-over-environment")
	if err != nil || string(s) != "flag-wins-over-environment" {
		t.Fatalf("flag secret: %q %v", s, err)
	}
	n, err := NewSecret()
	if err != nil || len(n) != 64 || strings.Trim(n, "0123456789abcdef") != "" {
		t.Fatalf("new secret %q %v", n, err)
	}
}

func TestVerifyAllocs(t *testing.T) {
	job := []byte("sort-123")
	tok := Sign(secret, job)
	if n := testing.AllocsPerRun(100, func() { Verify(secret, job, tok) }); n != 0 {
		t.Fatalf("Verify allocates %v times", n)
	}
}

func BenchmarkVerify(b *testing.B) {
	job := []byte("sort-123")
	tok := Sign(secret, job)
	b.ReportAllocs()
	for b.Loop() {
		if !Verify(secret, job, tok) {
			b.Fatal("refused")
		}
	}
}
