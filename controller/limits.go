package controller

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/pocketstore/pocket/internal/units"
	"github.com/pocketstore/pocket/wire"
)

// Registration limits (Config): the cluster holds at most MaxJobs jobs; a
// client holds at most MaxJobsPerClient, registers at most RegisterRate
// jobs a second, in bursts of RegisterBurst (a token bucket), and its live
// jobs' allotments add up to at most MaxBytesPerClient bytes and
// MaxMbpsPerClient Mb/s (quotaLocked). A client is the tenant its TLS
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
}

// A pend holds a registering job's need against its client's quota from
// the autoscaler's reservation until the job is entered (enterJob) or
// refused (RegisterJobFor's unpend). Without it, registrations at once
// each passed the quota before any was entered, and the autoscaler
// started nodes for needs the quota then refused.
type pend struct {
	client string
	need   Need
	done   bool
}

// pendLocked holds need against the client's quota; nil when the client
// has no quota.
func (c *Controller) pendLocked(key string, need Need) *pend {
	if key == "" || c.cfg.MaxBytesPerClient <= 0 && c.cfg.MaxMbpsPerClient <= 0 {
		return nil
	}
	cl := c.clientLocked(key)
	cl.pends++
	cl.pend.Bytes += need.Bytes
	cl.pend.Mbps += need.Mbps
	return &pend{client: key, need: need}
}

// unpendLocked lets go of what p holds, once (p may be nil).
func (c *Controller) unpendLocked(p *pend) {
	if p == nil || p.done {
		return
	}
	p.done = true
	cl := c.clientLocked(p.client)
	cl.pends--
	cl.pend.Bytes -= p.need.Bytes
	cl.pend.Mbps -= p.need.Mbps
	if cl.pends == 0 {
		cl.pend = Need{}
	}
}

func (c *Controller) unpend(p *pend) {
	if p == nil {
		return
	}
	c.mu.Lock()
	c.unpendLocked(p)
	c.mu.Unlock()
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

// countLocked checks the job counts, the cluster's and the client's.
func (c *Controller) countLocked(key string) error {
	if n := len(c.jobs); n >= c.cfg.MaxJobs {
		return wire.Errorf(wire.CodeLimit, "the cluster holds %d jobs (MaxJobs %d): deregister some first", n, c.cfg.MaxJobs)
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

// quotaLocked holds need within what the client (key; "" is not
// limited) may still allot itself: MaxBytesPerClient and MaxMbpsPerClient
// less its live jobs' allotments. A hinted need beyond either is refused
// (CodeLimit naming the limit, what the client holds and what is left). A
// learned need (its name's profile, or Pocket's default) is cut to what is
// left, since the job asked for nothing, and refused only when less than
// one lambda's bandwidth (Policy.PerLambdaMbps) is left of the Mb/s quota.
// Without these bounds one client's hints held every node's capacity, and
// on an autoscaling cluster its bandwidth hints kept MaxNodes nodes
// running, idle or not.
func (c *Controller) quotaLocked(key string, need Need) (Need, error) {
	leftBytes, leftMbps := c.quotaLeftLocked(key)
	hinted := need.Source == SizeHints
	if need.Bytes > leftBytes {
		if hinted {
			return need, c.quotaError(key, "MaxBytesPerClient", units.FormatSize(c.cfg.MaxBytesPerClient),
				fmt.Sprintf("its capacity hint of %s is more than the %s left", sizeText(need.Bytes), sizeText(leftBytes)))
		}
		need.Bytes = leftBytes
	}
	if need.Mbps > leftMbps {
		lambda := c.cfg.Policy.PerLambdaMbps
		switch {
		case hinted:
			return need, c.quotaError(key, "MaxMbpsPerClient", fmt.Sprintf("%.6g", c.cfg.MaxMbpsPerClient),
				fmt.Sprintf("its hints' need of %.6g Mb/s is more than the %.6g Mb/s left", need.Mbps, leftMbps))
		case leftMbps < lambda:
			return need, c.quotaError(key, "MaxMbpsPerClient", fmt.Sprintf("%.6g", c.cfg.MaxMbpsPerClient),
				fmt.Sprintf("a job without hints is allotted what is left, and %.6g Mb/s is less than one lambda's %.6g", leftMbps, lambda))
		}
		need.Mbps = leftMbps
	}
	return need, nil
}

// sizeText is units.FormatSize(n), with the exact count when that rounds.
func sizeText(n int64) string {
	s := units.FormatSize(n)
	if back, err := units.ParseSize(s); err != nil || back != n {
		s += fmt.Sprintf(" (%d bytes)", n)
	}
	return s
}

// quotaLeftLocked is what the client may still allot itself, in bytes and
// Mb/s (MaxInt64 and +Inf when unbounded).
func (c *Controller) quotaLeftLocked(key string) (int64, float64) {
	bytes, mbps := int64(math.MaxInt64), math.Inf(1)
	if key == "" {
		return bytes, mbps
	}
	var cl client
	if p := c.clients[key]; p != nil {
		cl = *p
	}
	if lim := c.cfg.MaxBytesPerClient; lim > 0 {
		bytes = max(lim-cl.bytes-cl.pend.Bytes, 0)
	}
	if lim := c.cfg.MaxMbpsPerClient; lim > 0 {
		mbps = max(lim-cl.mbps-cl.pend.Mbps, 0)
	}
	return bytes, mbps
}

// quotaError is a registration refused for the client's quota limit
// (named, with its value), saying what the client holds.
func (c *Controller) quotaError(key, limit, value, why string) error {
	var cl client
	if p := c.clients[key]; p != nil {
		cl = *p
	}
	held := ""
	if cl.pends > 0 {
		held = fmt.Sprintf(", and %d registering hold %s and %.6g Mb/s", cl.pends, sizeText(cl.pend.Bytes), cl.pend.Mbps)
	}
	return wire.Errorf(wire.CodeLimit, "%s holds %d jobs allotted %s and %.6g Mb/s%s (%s %s): %s; deregister some, or hint less",
		clientName(key), cl.jobs, sizeText(cl.bytes), cl.mbps, held, limit, value, why)
}

// holdLocked adds a job's allotment (sign 1) to its client's, or takes
// it away (sign -1).
func (c *Controller) holdLocked(j *job, sign int) {
	cl := c.clientLocked(j.client)
	if cl == nil {
		return
	}
	cl.jobs += sign
	cl.bytes += int64(sign) * j.allocBytes
	cl.mbps += float64(sign) * j.allocMbps
	if cl.jobs == 0 { // no float residue once it holds nothing
		cl.bytes, cl.mbps = 0, 0
	}
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
