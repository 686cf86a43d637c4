package token

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

var orderSecret = []byte("order-secret-0123456789abcdef")

// validOrder is an order the controller made at now for node 10.0.0.7:7000.
func validOrder(now time.Time) Order {
	return Order{Addr: "10.0.0.7:7000", Incarnation: 0x1234_5678_9abc, Op: 0x07, Flags: 0,
		Nonce: []byte("0123456789abcdef"), ExpiresMs: now.Add(OrderLife).UnixMilli()}
}

// TestVerifyOrderRefusesAlteredFields: a proof passes only for the order
// it was made for; changing any field of the order (as a replay to another
// node, another process at the same address, or with other flags does),
// the job, the secret, or the proof's own bytes makes VerifyOrder refuse
// it, and the validity window is judged with the node's clock.
func TestVerifyOrderRefusesAlteredFields(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_000)
	job := []byte("sort-17")
	o := validOrder(now)
	proof := OrderProof(OrderKey(orderSecret, job), &o)
	if exp, err := VerifyOrder(orderSecret, job, o, proof, now); err != nil || exp != o.ExpiresMs {
		t.Fatalf("the order as made: expiry %d, %v; want %d, nil", exp, err, o.ExpiresMs)
	}
	if bytes.Contains(proof, OrderKey(orderSecret, job)[headLen:]) {
		t.Fatal("the proof carries the order key's tag")
	}
	cases := []struct {
		name string
		edit func(o *Order, job *[]byte, secret *[]byte, proof []byte, at *time.Time)
		want error
	}{
		{"another node's address", func(o *Order, _, _ *[]byte, _ []byte, _ *time.Time) { o.Addr = "10.0.0.8:7000" }, ErrOrderForged},
		{"the same host, another port", func(o *Order, _, _ *[]byte, _ []byte, _ *time.Time) { o.Addr = "10.0.0.7:7001" }, ErrOrderForged},
		{"another incarnation at the address", func(o *Order, _, _ *[]byte, _ []byte, _ *time.Time) { o.Incarnation++ }, ErrOrderIncarnation},
		{"FlagPrefix added", func(o *Order, _, _ *[]byte, _ []byte, _ *time.Time) { o.Flags |= 1 << 4 }, ErrOrderForged},
		{"a high flag added", func(o *Order, _, _ *[]byte, _ []byte, _ *time.Time) { o.Flags |= 1 << 15 }, ErrOrderForged},
		{"another opcode", func(o *Order, _, _ *[]byte, _ []byte, _ *time.Time) { o.Op = 0x04 }, ErrOrderForged},
		{"another nonce", func(o *Order, _, _ *[]byte, _ []byte, _ *time.Time) { o.Nonce = []byte("0123456789abcdeF") }, ErrOrderForged},
		{"a short nonce", func(o *Order, _, _ *[]byte, _ []byte, _ *time.Time) { o.Nonce = o.Nonce[:7] }, ErrOrderNonce},
		{"something carried added", func(o *Order, _, _ *[]byte, _ []byte, _ *time.Time) { o.Carried = []byte{0, 0, 0, 0, 0, 0, 0, 1} }, ErrOrderForged},
		{"another job", func(_ *Order, job, _ *[]byte, _ []byte, _ *time.Time) { *job = []byte("sort-18") }, ErrOrderForged},
		{"another secret", func(_ *Order, _, s *[]byte, _ []byte, _ *time.Time) { *s = []byte("other-secret-0123456789abcdef") }, ErrOrderForged},
		{"the incarnation claim edited", func(_ *Order, _, _ *[]byte, p []byte, _ *time.Time) { p[1] ^= 1 }, ErrOrderForged},
		{"the expiry claim extended", func(_ *Order, _, _ *[]byte, p []byte, _ *time.Time) { p[10]++ }, ErrOrderForged},
		{"the kind edited", func(_ *Order, _, _ *[]byte, p []byte, _ *time.Time) { p[0] = byte(KindAdmin) }, ErrOrderForged},
		{"a tag bit flipped", func(_ *Order, _, _ *[]byte, p []byte, _ *time.Time) { p[Len-1] ^= 0x80 }, ErrOrderForged},
		{"the plain admin token", func(_ *Order, job, _ *[]byte, p []byte, _ *time.Time) { copy(p, SignAdmin(orderSecret, *job)) }, ErrOrderForged},
		{"received after expiry plus skew", func(_ *Order, _, _ *[]byte, _ []byte, at *time.Time) { *at = at.Add(OrderLife + OrderSkew) }, ErrOrderExpired},
		{"received long after", func(_ *Order, _, _ *[]byte, _ []byte, at *time.Time) { *at = at.Add(24 * time.Hour) }, ErrOrderExpired},
		{"a node clock far behind", func(_ *Order, _, _ *[]byte, _ []byte, at *time.Time) { *at = at.Add(-OrderSkew - time.Millisecond) }, ErrOrderTooLong},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o2 := o
			o2.Nonce = append([]byte(nil), o.Nonce...)
			j2, s2, p2, at := append([]byte(nil), job...), append([]byte(nil), orderSecret...), append([]byte(nil), proof...), now
			tc.edit(&o2, &j2, &s2, p2, &at)
			if _, err := VerifyOrder(s2, j2, o2, p2, at); !errors.Is(err, tc.want) {
				t.Fatalf("VerifyOrder: %v, want %v", err, tc.want)
			}
		})
	}
	// Within the skew either way, the order stands.
	for _, at := range []time.Time{now.Add(-OrderSkew + time.Millisecond), now.Add(OrderLife + OrderSkew - time.Millisecond)} {
		if _, err := VerifyOrder(orderSecret, job, o, proof, at); err != nil {
			t.Errorf("received at %v (made at %v): %v", at.Sub(now), now, err)
		}
	}
	// An order that asks to live longer than OrderLife+OrderSkew is refused
	// even from the controller.
	long := o
	long.ExpiresMs = now.Add(OrderLife + OrderSkew + time.Second).UnixMilli()
	if _, err := VerifyOrder(orderSecret, job, long, OrderProof(OrderKey(orderSecret, job), &long), now); !errors.Is(err, ErrOrderTooLong) {
		t.Errorf("an order valid for %v: %v, want ErrOrderTooLong", OrderLife+OrderSkew+time.Second, err)
	}
	// An order without an expiry never passes.
	never := o
	never.ExpiresMs = 0
	if _, err := VerifyOrder(orderSecret, job, never, OrderProof(OrderKey(orderSecret, job), &never), now); !errors.Is(err, ErrOrderExpired) {
		t.Errorf("an order without expiry: %v, want ErrOrderExpired", err)
	}
}

// FuzzVerifyOrder: whatever a forger changes in a valid order (address,
// incarnation, flags, opcode, nonce, the proof's bytes), VerifyOrder takes
// it only when the result is the order as made.
func FuzzVerifyOrder(f *testing.F) {
	f.Add("10.0.0.7:7000", uint64(0x1234_5678_9abc), uint16(0), byte(7), []byte("0123456789abcdef"), []byte{})
	f.Add("10.0.0.8:7000", uint64(0x1234_5678_9abc), uint16(16), byte(7), []byte("0123456789abcdef"), []byte{1, 0x80})
	f.Add("10.0.0.7:7000", uint64(1), uint16(0), byte(7), []byte("0123456789abcdef"), []byte{20, 1})
	now := time.UnixMilli(1_800_000_000_000)
	job := []byte("sort-17")
	o := validOrder(now)
	proof := OrderProof(OrderKey(orderSecret, job), &o)
	f.Fuzz(func(t *testing.T, addr string, inc uint64, flags uint16, op byte, nonce, flips []byte) {
		p := append([]byte(nil), proof...)
		for i := 0; i+1 < len(flips); i += 2 {
			p[int(flips[i])%Len] ^= flips[i+1]
		}
		got := Order{Addr: addr, Incarnation: inc, Op: op, Flags: flags, Nonce: nonce}
		_, err := VerifyOrder(orderSecret, job, got, p, now)
		same := addr == o.Addr && inc == o.Incarnation && flags == o.Flags && op == o.Op &&
			bytes.Equal(nonce, o.Nonce) && bytes.Equal(p, proof)
		if (err == nil) != same {
			t.Fatalf("order %+v with proof %x: %v (same as made: %v)", got, p, err, same)
		}
	})
}

// TestOrderKeyIsNotTheAdminToken: the admin token earlier releases sent
// bare in their drop orders cannot make an order a node takes: orders are
// keyed with OrderKey, a tag of its own kind.
func TestOrderKeyIsNotTheAdminToken(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_000)
	job := []byte("sort-17")
	o := validOrder(now)
	if bytes.Equal(OrderKey(orderSecret, job), SignAdmin(orderSecret, job)) {
		t.Fatal("the order key is the admin token")
	}
	if _, err := VerifyOrder(orderSecret, job, o, OrderProof(SignAdmin(orderSecret, job), &o), now); !errors.Is(err, ErrOrderForged) {
		t.Fatalf("an order keyed with the admin token: %v, want %v", err, ErrOrderForged)
	}
}

// TestOrderBindsWhatItCarries: an order that carries versions
// (wire.OpDropVersions) passes only with exactly those: one version
// changed, added or taken away, or none at all, and the proof is refused,
// so an order seen on the wire cannot be turned against other chunks.
func TestOrderBindsWhatItCarries(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_000)
	job := []byte("sort-17")
	o := validOrder(now)
	o.Op = 0x0D
	o.Carried = []byte{0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 9}
	proof := OrderProof(OrderKey(orderSecret, job), &o)
	if _, err := VerifyOrder(orderSecret, job, o, proof, now); err != nil {
		t.Fatalf("the order as made: %v", err)
	}
	for name, carried := range map[string][]byte{
		"a version changed": {0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 8},
		"a version added":   append(append([]byte(nil), o.Carried...), 0, 0, 0, 0, 0, 0, 0, 1),
		"a version removed": o.Carried[:8],
		"nothing carried":   nil,
	} {
		o2 := o
		o2.Carried = carried
		if _, err := VerifyOrder(orderSecret, job, o2, proof, now); !errors.Is(err, ErrOrderForged) {
			t.Errorf("%s: %v, want %v", name, err, ErrOrderForged)
		}
	}
}

// TestVersionsReplyProof: a node's proof of its answer to a versions order
// passes only for that answer to that order: another page, a version
// left out, More flipped, another order's nonce or another job's key, and
// it is refused.
func TestVersionsReplyProof(t *testing.T) {
	key := OrderKey(orderSecret, []byte("sort-17"))
	nonce := []byte("0123456789abcdef")
	vs := []uint64{3, 9, 1 << 60}
	proof := VersionsReplyProof(key, nonce, vs, true)
	if !VerifyVersionsReply(key, nonce, vs, true, proof) {
		t.Fatal("the answer as proved is refused")
	}
	for name, ok := range map[string]bool{
		"a version left out":  VerifyVersionsReply(key, nonce, vs[1:], true, proof),
		"none":                VerifyVersionsReply(key, nonce, nil, true, proof),
		"a version changed":   VerifyVersionsReply(key, nonce, []uint64{3, 9, 1<<60 + 1}, true, proof),
		"more flipped":        VerifyVersionsReply(key, nonce, vs, false, proof),
		"another nonce":       VerifyVersionsReply(key, []byte("0123456789abcdeF"), vs, true, proof),
		"another job's key":   VerifyVersionsReply(OrderKey(orderSecret, []byte("sort-18")), nonce, vs, true, proof),
		"an order's proof":    VerifyVersionsReply(key, nonce, vs, true, OrderProof(key, &Order{Nonce: nonce})),
		"no proof":            VerifyVersionsReply(key, nonce, vs, true, nil),
		"the proof truncated": VerifyVersionsReply(key, nonce, vs, true, proof[:Len-1]),
	} {
		if ok {
			t.Errorf("%s: passed", name)
		}
	}
}

// TestDropReplyProof: a node's proof of its drop answer passes only for
// the bytes it said it keeps, for that order's nonce and that job, and is
// no versions answer's.
func TestDropReplyProof(t *testing.T) {
	key := OrderKey(orderSecret, []byte("sort-17"))
	nonce := []byte("0123456789abcdef")
	proof := DropReplyProof(key, nonce, 0)
	if !VerifyDropReply(key, nonce, 0, proof) {
		t.Fatal("the answer as proved is refused")
	}
	for name, ok := range map[string]bool{
		"other bytes kept":     VerifyDropReply(key, nonce, 4096, proof),
		"another nonce":        VerifyDropReply(key, []byte("0123456789abcdeF"), 0, proof),
		"another job's key":    VerifyDropReply(OrderKey(orderSecret, []byte("sort-18")), nonce, 0, proof),
		"a versions answer's":  VerifyDropReply(key, nonce, 0, VersionsReplyProof(key, nonce, nil, false)),
		"as a versions answer": VerifyVersionsReply(key, nonce, nil, false, proof),
		"no proof":             VerifyDropReply(key, nonce, 0, nil),
	} {
		if ok {
			t.Errorf("%s: passed", name)
		}
	}
}
