package controller

// Attack tests of the hostile review that failed on the code before the
// dead-member fix (elastic_attack_test.go has the helpers). The restart
// finding is covered by TestJobMapChangeSurvivesRestart.

import (
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// TestAttackDeadMemberEndsChange: a member of the map that is dead (not
// yet lost: it may come back with its values) when a grow runs never
// moves the values the joining node now owns; the change must not end
// without it, or those values are stranded at an owner no client asks.
func TestAttackDeadMemberEndsChange(t *testing.T) {
	c, r, m0, m1 := growing(t)
	a, b := "127.0.0.1:7001", "127.0.0.1:7002"
	if err := c.SetNodeState(b, wire.NodeDead); err != nil {
		t.Fatal(err)
	}
	r.beat(a, []wire.MoveReport{{Job: m0.Job, Epoch: m1.Epoch}})
	c.movesTick(time.Now())
	if !moving(c, m0.Job) {
		t.Fatalf("the change ended while %s, dead but still in the map, had not moved its values", b)
	}
}
