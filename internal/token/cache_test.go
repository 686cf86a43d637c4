package token

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
)

func TestVerifierAgreesWithVerify(t *testing.T) {
	v := NewVerifier(secret, 3)
	for round := 0; round < 2; round++ { // first computed, then remembered
		for i := 0; i < 5; i++ { // more jobs than the Verifier keeps
			job := fmt.Appendf(nil, "job-%d", i)
			tok := Sign(secret, job)
			if !v.Verify(job, tok) {
				t.Fatalf("round %d: valid token for %s refused", round, job)
			}
			other := Sign(secret, fmt.Appendf(nil, "job-%d", i+1))
			if v.Verify(job, other) {
				t.Fatalf("round %d: another job's token accepted for %s", round, job)
			}
			bad := bytes.Clone(tok)
			bad[Len-1] ^= 1
			if v.Verify(job, bad) || v.Verify(job, tok[:Len-1]) || v.Verify(job, SignAdmin(secret, job)) {
				t.Fatalf("round %d: tampered token accepted", round)
			}
		}
	}
	if n := len(*v.known.Load()); n > 3 {
		t.Fatalf("verifier keeps %d jobs, limit 3", n)
	}
	job := []byte("job-4")
	v.Forget(job)
	if _, ok := (*v.known.Load())["job-4"]; ok {
		t.Fatal("forgotten job still remembered")
	}
	if !v.Verify(job, Sign(secret, job)) {
		t.Fatal("token refused after Forget")
	}
}

func TestVerifierConcurrent(t *testing.T) {
	v := NewVerifier(secret, 0)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				job := fmt.Appendf(nil, "j-%d", i%17)
				if !v.Verify(job, Sign(secret, job)) {
					t.Error("valid token refused")
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestVerifierAllocs(t *testing.T) {
	v := NewVerifier(secret, 0)
	job := []byte("sort-123")
	tok := Sign(secret, job)
	v.Verify(job, tok)
	if n := testing.AllocsPerRun(100, func() { v.Verify(job, tok) }); n != 0 {
		t.Fatalf("remembered Verify allocates %v times", n)
	}
}

func BenchmarkVerifierCached(b *testing.B) {
	v := NewVerifier(secret, 0)
	job := []byte("sort-123")
	tok := Sign(secret, job)
	b.ReportAllocs()
	for b.Loop() {
		if !v.Verify(job, tok) {
			b.Fatal("refused")
		}
	}
}
