package client

import (
	"testing"
	"time"
)

// TestOneBurstBacksOffOnce (hostile check): the connections of one burst
// refused at the limit set the pool's while once; a dial made after the
// refusal, refused in turn, doubles it. Before, each refusal doubled it:
// 4 connections refused together made it 2 s, not 250 ms.
func TestOneBurstBacksOffOnce(t *testing.T) {
	p := &pool{slots: make([]slot, 8)}
	burst := []*muxConn{{}, {}, {}, {}} // dialled before any refusal
	for _, mc := range burst {
		p.refused(mc)
	}
	if p.backoff != limitBackoff {
		t.Fatalf("4 connections of one burst refused: the while is %v, want %v", p.backoff, limitBackoff)
	}
	if left := time.Until(p.limited); left > limitBackoff {
		t.Fatalf("the while ends in %v, want at most %v", left, limitBackoff)
	}
	probe := &muxConn{limitGen: p.limitGen} // dialled after the refusal
	p.refused(probe)
	if p.backoff != 2*limitBackoff {
		t.Fatalf("the probe refused: the while is %v, want %v", p.backoff, 2*limitBackoff)
	}
	p.served(&muxConn{limitGen: p.limitGen})
	if p.backoff != 0 || !p.limited.IsZero() {
		t.Fatalf("a connection dialled since the last refusal served: the while is %v until %v, want none", p.backoff, p.limited)
	}
}
