package controller

import (
	"net"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// TestPeerGone: a connection whose peer closed is seen gone without a
// read; an open one is not.
func TestPeerGone(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if peerGone(srv) {
		t.Fatal("an open connection seen gone")
	}
	cli.Close()
	deadline := time.Now().Add(5 * time.Second)
	for !peerGone(srv) {
		if time.Now().After(deadline) {
			t.Fatal("a connection whose peer closed it not seen gone")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRegistrationOfAGoneClient (hostile trial of the quotas): a
// registration whose client left while nodes started for it, or made
// while the controller closes, enters no job and holds nothing. Before,
// the job was entered; its token reached nobody, so nobody could
// deregister it, and it held its tenant's quota.
func TestRegistrationOfAGoneClient(t *testing.T) {
	r := newScaleRigWith(t, 1, AutoscaleConfig{}, func(c *Controller) { c.cfg.MaxMbpsPerClient = 2000 })
	who := newRegistrant("10.0.0.9", "", false)
	who.gone = func() bool { return true }
	_, err := r.c.registerJob(who, &wire.JobRegister{Name: "left", Hints: wire.JobHints{PeakMbps: 2000}})
	if wire.CodeOf(err) != wire.CodeClosed {
		t.Fatalf("register for a gone client: %v; want CodeClosed", err)
	}
	if n := len(r.c.Status().Jobs); n != 0 {
		t.Fatalf("%d jobs after a gone client's registration; want none", n)
	}
	if _, err := r.c.RegisterJobFrom("10.0.0.9", &wire.JobRegister{Name: "next", Hints: wire.JobHints{PeakMbps: 2000}}); err != nil {
		t.Fatalf("the client's next registration of its whole quota: %v", err)
	}

	c := newTest(t, Config{})
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	c.Close()
	if _, err := c.RegisterJobFrom("10.0.0.1", &wire.JobRegister{Name: "late"}); wire.CodeOf(err) != wire.CodeClosed {
		t.Errorf("register while the controller closes: %v; want CodeClosed", err)
	}
}
