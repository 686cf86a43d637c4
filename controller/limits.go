package controller

import (
	"strings"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// Registration limits (Config): the cluster holds at most MaxJobs jobs; a
// client holds at most MaxJobsPerClient, registers at most RegisterRate
// jobs a second, in bursts of RegisterBurst (a token bucket), and its live
// jobs' allotments add up to at most MaxBytesPerClient bytes and
// MaxMbpsPerClient Mb/s (quota.go). A client is the tenant its TLS
// certificate names (TenantOf), else its peer key (a remote IPv4 address
// or IPv6 /64): tenants behind one address have their own limits, and a
// tenant's jobs from many addresses share theirs (limitKey). A refusal is
// a CodeLimit error naming the limit and its value. A client's record
// lives while it holds jobs or its bucket is refilling, so the records are
// bounded by the registered jobs and the last second's registrations.
//
// The connection limits (MaxConns, MaxConnsPerPeer) are enforced by the
// server (server.go); node connections are outside MaxConns there.

// client is one registering tenant or peer.
type client struct {
	jobs   int       // live jobs it registered
	bytes  int64     // their allotted bytes (job.allocBytes)
	mbps   float64   // their allotted bandwidth (job.allocMbps), Mb/s
	pends  int       // registrations between reservation and entry (pend)
	pend   Need      // what they hold meanwhile: Bytes and Mbps
	tokens float64   // registrations it may make now
	at     time.Time // when tokens was computed
	over   bool      // it stores past its byte quota (quotafull.go), as last logged
	stored int64     // what it stores, as the last quotaTick summed it
}

// tenantKey begins the client key of a tenant; a peer key (an IP address)
// never holds a space.
const tenantKey = "tenant "

// limitKey is the client a registration from peer (peerKey; "" in
// process) of tenant (TenantOf; "" without TLS, or for the operator)
// counts against: the tenant when there is one, else the peer.
func limitKey(peer, tenant string) string {
	if tenant != "" && peer != "" {
		return tenantKey + tenant
	}
	return peer
}

// clientName is how refusals name a client key: "tenant NAME" or
// "client ADDR".
func clientName(key string) string {
	if strings.HasPrefix(key, tenantKey) {
		return key
	}
	return "client " + key
}

// clientLocked returns the record of a peer, nil for in-process callers.
func (c *Controller) clientLocked(key string) *client {
	if key == "" {
		return nil
	}
	cl := c.clients[key]
	if cl == nil {
		cl = &client{tokens: float64(c.cfg.RegisterBurst), at: time.Now()}
		c.clients[key] = cl
	}
	return cl
}

// admitLocked checks a registration against the limits and takes one
// token from the client's bucket.
func (c *Controller) admitLocked(key string, now time.Time) error {
	if err := c.countLocked(key); err != nil {
		return err
	}
	cl := c.clientLocked(key)
	if cl == nil || c.cfg.RegisterRate < 0 {
		return nil
	}
	cl.refill(now, c.cfg.RegisterRate, c.cfg.RegisterBurst)
	if cl.tokens < 1 {
		return wire.Errorf(wire.CodeLimit, "%s registers jobs faster than %g a second (RegisterRate %g, RegisterBurst %d)",
			clientName(key), c.cfg.RegisterRate, c.cfg.RegisterRate, c.cfg.RegisterBurst)
	}
	cl.tokens--
	return nil
}

// clusterFull begins the refusal at MaxJobs (countLocked); privateTo
// gives a tenant the refusal without its figures.
const clusterFull = "the cluster holds "

// countLocked checks the job counts, the cluster's and the client's.
func (c *Controller) countLocked(key string) error {
	if n := len(c.jobs); n >= c.cfg.MaxJobs {
		return wire.Errorf(wire.CodeLimit, clusterFull+"%d jobs (MaxJobs %d): deregister some first", n, c.cfg.MaxJobs)
	}
	if key == "" || c.cfg.MaxJobsPerClient < 0 {
		return nil
	}
	if cl := c.clients[key]; cl != nil && cl.jobs >= c.cfg.MaxJobsPerClient {
		return wire.Errorf(wire.CodeLimit, "%s holds %d jobs (MaxJobsPerClient %d): deregister some first",
			clientName(key), cl.jobs, c.cfg.MaxJobsPerClient)
	}
	return nil
}

func (cl *client) refill(now time.Time, rate float64, burst int) {
	if d := now.Sub(cl.at).Seconds(); d > 0 {
		cl.tokens = min(float64(burst), cl.tokens+d*rate)
	}
	cl.at = now
}

// sweepClientsLocked forgets clients that hold no job and whose bucket is
// full again.
func (c *Controller) sweepClientsLocked(now time.Time) {
	for key, cl := range c.clients {
		if cl.jobs > 0 || cl.pends > 0 {
			continue
		}
		if c.cfg.RegisterRate > 0 {
			cl.refill(now, c.cfg.RegisterRate, c.cfg.RegisterBurst)
			if cl.tokens < float64(c.cfg.RegisterBurst) {
				continue
			}
		}
		delete(c.clients, key)
	}
}
