package controller

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/pocketstore/pocket/internal/pki"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// TestGoneTLSClientHoldsNoQuota (hostile trial): a client whose call times
// out while the autoscaler starts nodes for its registration closes its
// connection. Over plain TCP the controller saw it gone and entered no
// job; over TLS the client's close_notify record sat in the socket, the
// peek saw "data", and the job was entered: its token reached nobody and
// it held the tenant's quota until its token expired (without a TTL, for
// good). A client that waits still gets its job.
func TestGoneTLSClientHoldsNoQuota(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		name := map[bool]string{false: "plain", true: "tls"}[useTLS]
		for _, waits := range []bool{false, true} {
			t.Run(name+map[bool]string{false: "/gone", true: "/waits"}[waits], func(t *testing.T) {
				dir := testPKI(t)
				r := newScaleRigWith(t, 1, AutoscaleConfig{StartTimeout: 5 * time.Second}, func(c *Controller) {
					c.cfg.MaxMbpsPerClient = 2000
					if useTLS {
						srv, err := pki.ServerConfig(dir, "controller")
						if err != nil {
							t.Fatal(err)
						}
						c.cfg.TLS = srv
					}
				})
				gate := make(chan struct{})
				r.orch.mu.Lock()
				r.orch.gate = gate
				r.orch.mu.Unlock()
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				go r.c.Serve(ln)
				opt := metaclient.Options{Logger: quietLog, RetryFor: -1}
				if useTLS {
					cfg, err := pki.ClientConfig(dir, "client")
					if err != nil {
						t.Fatal(err)
					}
					opt.TLS = cfg
				}
				mc := metaclient.New(ln.Addr().String(), opt)
				defer mc.Close()
				wait := 300 * time.Millisecond
				if waits {
					wait = 10 * time.Second
				}
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				go func() {
					time.Sleep(500 * time.Millisecond) // the gone client's close reaches the controller
					close(gate)                        // the node starts; the registration goes on
				}()
				m, err := mc.RegisterJob(ctx, "gone", wire.JobHints{PeakMbps: 1500})
				if waits {
					if err != nil {
						t.Fatalf("a client that waits for its nodes: %v", err)
					}
					if m.AllocMbps != 1500 {
						t.Fatalf("allotted %g Mb/s; want 1500", m.AllocMbps)
					}
					return
				}
				if err == nil {
					t.Fatal("a registration past the client's deadline answered")
				}
				deadline := time.Now().Add(5 * time.Second)
				for time.Now().Before(deadline) && r.c.registeringNow() > 0 {
					time.Sleep(10 * time.Millisecond)
				}
				time.Sleep(600 * time.Millisecond)
				if st := r.c.Status(); len(st.Jobs) != 0 {
					t.Errorf("a client that left during the node start holds %d job(s) (%s, %g Mb/s; clients %+v): nobody has its token",
						len(st.Jobs), st.Jobs[0].Job, st.Jobs[0].AllocMbps, st.Clients)
				}
			})
		}
	}
}

// registeringNow is how many registrations are between reservation and entry.
func (c *Controller) registeringNow() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.registrants
}
