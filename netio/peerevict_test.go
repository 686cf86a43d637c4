package netio

import (
	"testing"
	"time"
)

// TestPeerLimitEvictsThePeersUnproven: MaxConnsPerPeer 8 on two loops,
// every client on one address. Eight connections that send nothing (as a
// hostile trial's, which held all 4,096 of a node's slots for its
// address) are open past UnprovenGrace: a ninth is served, one of the
// eight is evicted for it, and so on for a second one. Fails before
// peerevict.go: the ninth was refused for its peer while MaxConns had
// room. Then eight proven connections hold the address's slots: a
// newcomer is refused, none of them evicted.
func TestPeerLimitEvictsThePeersUnproven(t *testing.T) {
	h := &revHandler{echoHandler: newEcho(), wait: time.Hour}
	s := start(t, Config{Loops: 2, MaxConns: 100, MaxConnsPerPeer: 8, EvictUnproven: true}, h)
	for i := 0; i < 8; i++ {
		_ = dial(t, s)
	}
	waitFor(t, "eight open", func() bool { return s.Stats().Open == 8 })
	time.Sleep(UnprovenGrace + 100*time.Millisecond)
	for i := 0; i < 2; i++ {
		if c := dial(t, s); !served(c) {
			t.Fatalf("newcomer %d refused at MaxConnsPerPeer while its peer's 8 slots held unproven connections (stats %+v)", i, s.Stats())
		}
	}
	if ev := s.Stats().UnprovenEvictions; ev != 2 {
		t.Errorf("%d unproven connections evicted; want 2", ev)
	}
	// All eight slots now proven: six of the idle ones go for proven
	// newcomers, then a newcomer finds only proven connections.
	time.Sleep(UnprovenGrace + 100*time.Millisecond)
	for i := 0; i < 6; i++ {
		if c := dial(t, s); !served(c) {
			t.Fatalf("proven newcomer %d refused (stats %+v)", i, s.Stats())
		}
	}
	waitFor(t, "eight proven open", func() bool { return s.Stats().Open == 8 })
	time.Sleep(UnprovenGrace + 100*time.Millisecond)
	before := s.Stats().UnprovenEvictions
	if c := dial(t, s); served(c) {
		t.Fatal("a ninth connection was served while its peer's 8 slots were all proven")
	}
	if ev := s.Stats().UnprovenEvictions; ev != before {
		t.Errorf("a proven connection was evicted for a newcomer (%d evictions, %d before)", ev, before)
	}
}
