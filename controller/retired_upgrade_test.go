package controller

import (
	"errors"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/wire"
)

// TestNewNodeAtAnOldRetiredAddressIsNotToldToStop (hostile review of
// 20feeb1 and 407221f): a controller upgraded over the state of an older
// version holds its retired nodes without their incarnation (state.Node
// with Gone set and Incarnation 0: 20feeb1 began persisting it). A new,
// healthy node process registering at such an address within ForgetAfter
// (an operator restarting the machine's node, a Kubernetes pod given a
// recycled pod IP) is answered CodeDraining, "it must stop serving",
// which metaclient.RunNode now takes as final (ErrRetired): `pocket node`
// exits 0 and, under the pods' RestartPolicyOnFailure, is never
// restarted. Before 407221f that answer was retried until ForgetAfter.
// The controller cannot tell the retired process from a new one here, and
// the safe answer for "cannot tell" is the reversible one (CodeUnavailable,
// retried), not the one that ends the process. Fails on 0ab9499.
func TestNewNodeAtAnOldRetiredAddressIsNotToldToStop(t *testing.T) {
	r := newRestartable(t, Config{ForgetAfter: time.Minute}, false)
	addr := "127.0.0.1:7001"
	b := dramNode("127.0.0.1:7002", 1<<30, 1000)
	b.Incarnation = 42
	mustRegister(t, r.ctl, b)
	// The record an older controller wrote when it retired the node at
	// addr a few seconds ago; the upgraded controller starts on it.
	old := state.Node{Addr: addr, Gone: time.Now().Add(-5 * time.Second).UTC()}
	if err := r.store.Apply(&state.Batch{PutNodes: []state.Node{old}}); err != nil {
		t.Fatal(err)
	}
	r.restart()

	fresh := dramNode(addr, 1<<30, 1000)
	fresh.Incarnation = 43 // a new process: it was never drained
	_, err := r.ctl.RegisterNode(fresh)
	if errors.Is(err, wire.ErrDraining) {
		t.Fatalf("a new node process at an address retired without a known incarnation is told to stop "+
			"(metaclient.ErrRetired: pocket node exits 0 and is not restarted): %v", err)
	}
	if !errors.Is(err, wire.ErrUnavailable) {
		t.Fatalf("a new node process at a recently retired address: %v; want asked to retry later", err)
	}
}
