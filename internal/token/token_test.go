package token

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"
)

var secret = []byte("0123456789abcdef-test-secret")

// TestMatchesCryptoHMAC checks the hand-rolled HMAC against crypto/hmac for
// short, block-sized and long keys and subjects on both code paths.
func TestMatchesCryptoHMAC(t *testing.T) {
	keys := [][]byte{secret, bytes.Repeat([]byte{7}, 64), bytes.Repeat([]byte{9}, 100)}
	subjects := [][]byte{nil, []byte("sort-1"), bytes.Repeat([]byte("x"), maxInline), bytes.Repeat([]byte("y"), maxInline+1)}
	c := Claims{Gen: 1<<60 + 3, Expires: time.UnixMilli(1_800_000_000_123)}
	for _, k := range keys {
		for _, s := range subjects {
			var head [headLen]byte
			head[0] = byte(KindJob)
			binary.LittleEndian.PutUint64(head[1:], c.Gen)
			binary.LittleEndian.PutUint64(head[9:], uint64(c.ExpiresMs()))
			h := hmac.New(sha256.New, k)
			h.Write(head[:])
			h.Write(s)
			want := append(head[:], h.Sum(nil)...)
			if got := appendToken(nil, k, KindJob, c.Gen, c.ExpiresMs(), s); !bytes.Equal(got, want) {
				t.Fatalf("key %d bytes, subject %d bytes: tag differs from crypto/hmac", len(k), len(s))
			}
		}
	}
}

// TestGenIsMasked: a job token's bearer cannot read its gen. In plain, a
// tenant's two tokens told it how many state changes every other tenant
// made between its two registrations (a hostile trial: another tenant's 7
// registrations read as a difference of 8). Fails on the old code: the
// raw field was the gen.
func TestGenIsMasked(t *testing.T) {
	a, b := []byte("etl-771204"), []byte("etl-90311")
	ta, tb := SignJob(secret, a, Claims{Gen: 100}), SignJob(secret, b, Claims{Gen: 101})
	ra, rb := binary.LittleEndian.Uint64(ta[1:]), binary.LittleEndian.Uint64(tb[1:])
	if ra == 100 || rb == 101 || rb-ra == 1 {
		t.Fatalf("raw gen fields %d and %d: the bearer reads the gens 100 and 101", ra, rb)
	}
	ca, oka := ParseJob(secret, a, ta)
	cb, okb := ParseJob(secret, b, tb)
	if !oka || !okb || ca.Gen != 100 || cb.Gen != 101 {
		t.Fatalf("parsed gens %d %v, %d %v; want 100 and 101", ca.Gen, oka, cb.Gen, okb)
	}
	// The mask is inside the MAC like the rest: a changed field fails.
	bad := bytes.Clone(ta)
	bad[1] ^= 1
	if Verify(secret, a, bad) {
		t.Fatal("a token with its gen field changed verifies")
	}
}

func TestSignVerify(t *testing.T) {
	job := []byte("sort-1")
	claims := Claims{Gen: 42, Expires: time.UnixMilli(1_800_000_000_000)}
	tok := SignJob(secret, job, claims)
	if len(tok) != Len {
		t.Fatalf("len %d, want %d", len(tok), Len)
	}
	got, ok := ParseJob(secret, job, tok)
	if !ok || got.Gen != 42 || !got.Expires.Equal(claims.Expires) {
		t.Fatalf("claims %+v %v, want %+v", got, ok, claims)
	}
	nonce := []byte("0123456789abcdef")
	cases := map[string]func() bool{
		"other job":      func() bool { return Verify(secret, []byte("sort-2"), tok) },
		"other secret":   func() bool { return Verify([]byte("another-secret-value"), job, tok) },
		"truncated":      func() bool { return Verify(secret, job, tok[:Len-1]) },
		"empty":          func() bool { return Verify(secret, job, nil) },
		"admin as job":   func() bool { return Verify(secret, job, SignAdmin(secret, job)) },
		"order key":      func() bool { return Verify(secret, job, OrderKey(secret, job)) },
		"node as job":    func() bool { return Verify(secret, job, NodeProof(secret, nonce, string(job))) },
		"kind byte swap": func() bool { b := bytes.Clone(tok); b[0] = byte(KindAdmin); return Verify(secret, job, b) },
	}
	for name, f := range cases {
		if f() {
			t.Errorf("%s: accepted", name)
		}
	}
	// Every single-bit flip, of the claims or the tag, is refused: the
	// bearer can neither extend the expiry nor change the generation.
	for i := 1; i < Len; i++ {
		for bit := 0; bit < 8; bit++ {
			b := bytes.Clone(tok)
			b[i] ^= 1 << bit
			if Verify(secret, job, b) {
				t.Fatalf("tampered byte %d bit %d accepted", i, bit)
			}
		}
	}
}

func TestClaimsExpiry(t *testing.T) {
	now := time.Now()
	if (Claims{}).Expired(now) {
		t.Fatal("no expiry expired")
	}
	c := Claims{Expires: now.Add(time.Minute)}
	if c.Expired(now) || !c.Expired(now.Add(time.Minute)) {
		t.Fatal("expiry boundary")
	}
	tok := SignJob(secret, []byte("j-1"), Claims{Expires: time.UnixMilli(5)})
	if got, ok := ParseJob(secret, []byte("j-1"), tok); !ok || got.Expires.UnixMilli() != 5 {
		t.Fatalf("expiry round trip: %+v %v", got, ok)
	}
}

// TestProofs: a proof holds only for its nonce, address (and deadline),
// and a node's proof never passes as an operator's drain order.
func TestProofs(t *testing.T) {
	n1, n2 := []byte("nonce-one-16byte"), []byte("nonce-two-16byte")
	addr := "127.0.0.1:7000"
	p := NodeProof(secret, n1, addr)
	if !VerifyNodeProof(secret, n1, addr, p) {
		t.Fatal("node proof refused")
	}
	if VerifyNodeProof(secret, n2, addr, p) || VerifyNodeProof(secret, n1, "127.0.0.1:7001", p) ||
		VerifyNodeProof([]byte("another-secret-value"), n1, addr, p) || VerifyNodeProof(secret, nil, addr, p) {
		t.Fatal("node proof accepted for another nonce, address or secret")
	}
	// Nonce and address cannot trade bytes.
	if VerifyNodeProof(secret, []byte("nonce-one-16byt"), "e"+addr, p) {
		t.Fatal("nonce/address boundary not bound")
	}
	d := DrainProof(secret, n1, addr, 60_000)
	if !VerifyDrainProof(secret, n1, addr, 60_000, d) {
		t.Fatal("drain proof refused")
	}
	if VerifyDrainProof(secret, n1, addr, 1, d) || VerifyDrainProof(secret, n2, addr, 60_000, d) ||
		VerifyDrainProof(secret, n1, addr, 0, p) || VerifyNodeProof(secret, n1, addr, d) {
		t.Fatal("drain proof accepted for another deadline or nonce, or mixed with a node proof")
	}
	// The discard of persisted values is in the proof: neither order's
	// proof passes for the other, nor with the claim changed on the way.
	dd := DrainProofDiscard(secret, n1, addr, 60_000)
	if !VerifyDrainOrder(secret, n1, addr, 60_000, DrainDiscard, dd) || !VerifyDrainOrder(secret, n1, addr, 60_000, 0, d) {
		t.Fatal("drain order refused")
	}
	forged := bytes.Clone(d)
	forged[1] = 1 // the gen claim, as DrainProofDiscard's
	if VerifyDrainOrder(secret, n1, addr, 60_000, 0, dd) || VerifyDrainOrder(secret, n1, addr, 60_000, DrainDiscard, d) ||
		VerifyDrainOrder(secret, n1, addr, 60_000, DrainDiscard, forged) || VerifyDrainOrder(secret, n2, addr, 60_000, DrainDiscard, dd) ||
		VerifyDrainOrder(secret, n1, addr, 60_000, DrainDiscard|DrainLoseOverflow, dd) {
		t.Fatal("drain order accepted with the discard changed, or for another nonce")
	}
	ip := IncarnationProof(secret, n1, 42)
	if !VerifyIncarnationProof(secret, n1, 42, ip) {
		t.Fatal("incarnation proof refused")
	}
	if VerifyIncarnationProof(secret, n1, 43, ip) || VerifyIncarnationProof(secret, n2, 42, ip) ||
		VerifyIncarnationProof([]byte("another-secret-value"), n1, 42, ip) || VerifyNodeProof(secret, n1, "", ip) {
		t.Fatal("incarnation proof accepted for another incarnation, nonce or secret, or as a node proof")
	}
	// An operator's end of a job binds the job and the nonce; a node's
	// proof for an "address" spelled as the job id does not pass as one.
	ej := EndJobProof(secret, n1, "sort-7")
	if !VerifyEndJobProof(secret, n1, "sort-7", ej) {
		t.Fatal("end-job proof refused")
	}
	if VerifyEndJobProof(secret, n1, "sort-8", ej) || VerifyEndJobProof(secret, n2, "sort-7", ej) ||
		VerifyEndJobProof([]byte("another-secret-value"), n1, "sort-7", ej) ||
		VerifyEndJobProof(secret, n1, "sort-7", NodeProof(secret, n1, "sort-7")) || VerifyNodeProof(secret, n1, "sort-7", ej) ||
		VerifyDrainProof(secret, n1, "sort-7", 0, ej) {
		t.Fatal("end-job proof accepted for another job, nonce or secret, or mixed with a node or drain proof")
	}
	a, err := NewNonce(16)
	b, err2 := NewNonce(16)
	if err != nil || err2 != nil || len(a) != 16 || bytes.Equal(a, b) {
		t.Fatalf("nonces %x %x %v %v", a, b, err, err2)
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
	tok := SignJob(secret, job, Claims{Gen: 7})
	nonce := []byte("0123456789abcdef")
	proof := NodeProof(secret, nonce, "127.0.0.1:1")
	if n := testing.AllocsPerRun(100, func() { ParseJob(secret, job, tok) }); n != 0 {
		t.Fatalf("ParseJob allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { VerifyNodeProof(secret, nonce, "127.0.0.1:1", proof) }); n != 0 {
		t.Fatalf("VerifyNodeProof allocates %v times", n)
	}
}

func BenchmarkVerify(b *testing.B) {
	job := []byte("sort-123")
	tok := SignJob(secret, job, Claims{Gen: 7})
	b.ReportAllocs()
	for b.Loop() {
		if !Verify(secret, job, tok) {
			b.Fatal("refused")
		}
	}
}
