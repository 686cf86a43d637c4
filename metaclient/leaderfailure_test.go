package metaclient

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestStandbyAnswerCarriesTheLeaderFailure: a standby's "not leader"
// answer naming a leader this client failed to reach carries that
// failure, so a call that ends on it says why (a new user's trial: "no
// controller answered as the leader within 10s: not leader: ADDR", the
// x509 error behind it seen only by asking ADDR directly). An answer
// naming a leader not tried, or one that itself answered "not leader",
// stays as it was; the wrapped error is still a "not leader" answer.
func TestStandbyAnswerCarriesTheLeaderFailure(t *testing.T) {
	const leader = "127.0.0.1:17199"
	standby := &wire.Error{Code: wire.CodeNotLeader, Msg: leader}
	refused := errors.New("metaclient: status " + leader + ": dial: " + syscall.ECONNREFUSED.Error())
	got := withLeaderFailure(standby, map[string]error{leader: refused})
	if !strings.Contains(got.Error(), "not leader: "+leader) || !strings.Contains(got.Error(), leader+" itself: "+refused.Error()) ||
		!isNotLeader(got) || leaderNamed(got) != leader {
		t.Fatalf("standby's answer after the named leader was refused: %v", got)
	}
	for _, own := range []map[string]error{{}, {leader: &wire.Error{Code: wire.CodeNotLeader}}} {
		if got := withLeaderFailure(standby, own); got != error(standby) {
			t.Fatalf("with %v: %v; want the answer as it was", own, got)
		}
	}
}
