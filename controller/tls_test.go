package controller

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/pocketstore/pocket/internal/pki"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// testPKI issues a controller certificate and one per role into a
// directory, as `pocket up` would.
func testPKI(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.NewCA("test", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	for name, role := range map[string]pki.Role{"controller": pki.RoleController, "node": pki.RoleNode,
		"operator": pki.RoleOperator, "client": pki.RoleClient} {
		if err := ca.IssueTo(dir, role, name, []string{"127.0.0.1"}); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func tlsController(t *testing.T, dir string) string {
	t.Helper()
	srv, err := pki.ServerConfig(dir, "controller")
	if err != nil {
		t.Fatal(err)
	}
	c := newTest(t, Config{TLS: srv})
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	a, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return a.String()
}

func tlsClient(t *testing.T, dir, addr, member string, secret []byte) *metaclient.Client {
	t.Helper()
	cfg, err := pki.ClientConfig(dir, member)
	if err != nil {
		t.Fatal(err)
	}
	mc := metaclient.New(addr, metaclient.Options{TLS: cfg, Secret: secret, Logger: quietLog})
	t.Cleanup(func() { mc.Close() })
	return mc
}

// TestTLSRoles (issue 11, E): over mutual TLS each message needs its role:
// a job client's certificate registers jobs but cannot heartbeat, register
// a node, drain or list the cluster, even holding the secret; a node's
// certificate cannot drain; an operator's can.
func TestTLSRoles(t *testing.T) {
	dir := testPKI(t)
	addr := tlsController(t, dir)
	ctx := context.Background()
	nodeReg := wire.NodeRegister{Addr: "127.0.0.1:7002", Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30}}}

	client := tlsClient(t, dir, addr, "client", testSecret)
	m, err := client.RegisterJob(ctx, "over-tls", wire.JobHints{})
	if err != nil {
		t.Fatalf("client registers a job: %v", err)
	}
	if _, err := client.GetMap(ctx, m.Job, m.Token); err != nil {
		t.Fatalf("client gets its map: %v", err)
	}
	if _, err := client.Heartbeat(ctx, wire.Heartbeat{Addr: "127.0.0.1:7001"}); !errors.Is(err, wire.ErrForbidden) || !strings.Contains(err.Error(), "role node") {
		t.Fatalf("client heartbeats as a node: %v", err)
	}
	if _, err := client.RegisterNode(ctx, nodeReg); !errors.Is(err, wire.ErrForbidden) {
		t.Fatalf("client registers a node: %v", err)
	}
	if _, err := client.Drain(ctx, "127.0.0.1:7001", 0); !errors.Is(err, wire.ErrForbidden) || !strings.Contains(err.Error(), "role operator") {
		t.Fatalf("client drains a node: %v", err)
	}
	if _, err := client.Status(ctx); !errors.Is(err, wire.ErrForbidden) {
		t.Fatalf("client reads the cluster status: %v", err)
	}

	node := tlsClient(t, dir, addr, "node", testSecret)
	if _, err := node.RegisterNode(ctx, nodeReg); err != nil {
		t.Fatalf("node registers: %v", err)
	}
	if ack, err := node.Heartbeat(ctx, wire.Heartbeat{Addr: nodeReg.Addr}); err != nil || !ack.Known {
		t.Fatalf("node heartbeats: %+v %v", ack, err)
	}
	if _, err := node.Drain(ctx, "127.0.0.1:7001", 0); !errors.Is(err, wire.ErrForbidden) {
		t.Fatalf("node drains a node: %v", err)
	}
	if _, err := node.RegisterJob(ctx, "x", wire.JobHints{}); !errors.Is(err, wire.ErrForbidden) {
		t.Fatalf("node registers a job: %v", err)
	}

	op := tlsClient(t, dir, addr, "operator", testSecret)
	if st, err := op.Status(ctx); err != nil || len(st.Nodes) != 2 {
		t.Fatalf("operator status: %+v %v", st, err)
	}
	if d, err := op.Drain(ctx, "127.0.0.1:7001", time.Minute); err != nil || d != time.Minute {
		t.Fatalf("operator drains: %v %v", d, err)
	}
}

// TestTLSRefusesStrangers: no certificate, or one from another CA, gets no
// further than the handshake.
func TestTLSRefusesStrangers(t *testing.T) {
	dir := testPKI(t)
	addr := tlsController(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	good, err := pki.ClientConfig(dir, "client")
	if err != nil {
		t.Fatal(err)
	}
	anon := &tls.Config{RootCAs: good.RootCAs, MinVersion: tls.VersionTLS13}
	mc := metaclient.New(addr, metaclient.Options{TLS: anon, Logger: quietLog})
	defer mc.Close()
	if _, err := mc.RegisterJob(ctx, "anon", wire.JobHints{}); err == nil {
		t.Fatal("a client without a certificate registered a job")
	}
	other := testPKI(t) // another cluster's CA and members
	mo := tlsClient(t, other, addr, "operator", testSecret)
	if _, err := mo.Status(ctx); err == nil {
		t.Fatal("another CA's operator read the status")
	}
}

// recorder is a net.Conn that keeps what is written to it.
type recorder struct {
	net.Conn
	sent bytes.Buffer
}

func (r *recorder) Write(b []byte) (int, error) {
	r.sent.Write(b)
	return r.Conn.Write(b)
}

// TestRecordedStreamsDoNotReplay (issue 11, E): a node's recorded
// registration, replayed on another connection, is refused (its proof
// covers the first connection's challenge), and a plaintext stream
// replayed to the TLS listener ends at the handshake.
func TestRecordedStreamsDoNotReplay(t *testing.T) {
	c := newTest(t, Config{})
	a, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Record a node's challenge and registration.
	conn, err := net.Dial("tcp", a.String())
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{Conn: conn}
	r := bufio.NewReader(conn)
	b := flatbuffers.NewBuilder(0)
	lim := wire.ControlLimits()
	send := func(w io.Writer, op wire.Op, id uint64, m wire.ControlMessage) {
		w.Write(wire.AppendControlFrame(nil, op, id, wire.CodeOK, m.Encode(b)))
	}
	send(rec, wire.OpChallenge, 1, &wire.Challenge{})
	h, meta, err := wire.ReadControlFrame(r, &lim, nil)
	var ch wire.Challenge
	if err != nil || h.Code != wire.CodeOK || ch.Decode(meta) != nil || len(ch.Nonce) != nonceLen {
		t.Fatalf("challenge: %+v %v", h, err)
	}
	addr := "127.0.0.1:7009"
	send(rec, wire.OpRegisterNode, 2, &wire.NodeRegister{Addr: addr, Proof: token.NodeProof(testSecret, ch.Nonce, addr),
		Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30}}})
	if h, meta, err := wire.ReadControlFrame(r, &lim, nil); err != nil || wire.ReplyError(&h, meta) != nil {
		t.Fatalf("recorded registration: %v %v", err, wire.ReplyError(&h, meta))
	}
	conn.Close()
	c.SetNodeState(addr, wire.NodeDead)

	// Replay it all on a new connection: the new challenge differs, so
	// the recorded proof does not hold.
	replay, err := net.Dial("tcp", a.String())
	if err != nil {
		t.Fatal(err)
	}
	defer replay.Close()
	replay.SetDeadline(time.Now().Add(5 * time.Second))
	replay.Write(rec.sent.Bytes())
	rr := bufio.NewReader(replay)
	wire.ReadControlFrame(rr, &lim, nil) // its own challenge
	h, meta, err = wire.ReadControlFrame(rr, &lim, nil)
	if err != nil || !errors.Is(wire.ReplyError(&h, meta), wire.ErrBadToken) {
		t.Fatalf("replayed registration: %+v %v %v", h, err, wire.ReplyError(&h, meta))
	}
	// Without any challenge, no node message passes.
	bare, _ := net.Dial("tcp", a.String())
	defer bare.Close()
	bare.SetDeadline(time.Now().Add(5 * time.Second))
	send(bare, wire.OpHeartbeat, 1, &wire.Heartbeat{Addr: addr, Proof: token.NodeProof(testSecret, ch.Nonce, addr)})
	h, meta, err = wire.ReadControlFrame(bufio.NewReader(bare), &lim, nil)
	if err != nil || !errors.Is(wire.ReplyError(&h, meta), wire.ErrBadToken) {
		t.Fatalf("heartbeat without a challenge: %v %v", err, wire.ReplyError(&h, meta))
	}
	// A node's proof, valid on this very connection, is no drain order.
	mustRegister(t, c, dramNode(addr, 1<<30, 1000))
	dc, err := net.Dial("tcp", a.String())
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	dc.SetDeadline(time.Now().Add(5 * time.Second))
	dr := bufio.NewReader(dc)
	send(dc, wire.OpChallenge, 1, &wire.Challenge{})
	_, meta, err = wire.ReadControlFrame(dr, &lim, nil)
	if err != nil || ch.Decode(meta) != nil {
		t.Fatal(err)
	}
	send(dc, wire.OpDrainNode, 2, &wire.DrainNode{Addr: addr, Proof: token.NodeProof(testSecret, ch.Nonce, addr)})
	h, meta, err = wire.ReadControlFrame(dr, &lim, nil)
	if err != nil || !errors.Is(wire.ReplyError(&h, meta), wire.ErrBadToken) || countNodes(c, wire.NodeDraining) != 0 {
		t.Fatalf("a node's proof as a drain order: %v %v", err, wire.ReplyError(&h, meta))
	}

	// The same bytes to a TLS listener: not a TLS client hello.
	dir := testPKI(t)
	tlsAddr := tlsController(t, dir)
	tc, err := net.Dial("tcp", tlsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	tc.Write(rec.sent.Bytes())
	reply, _ := io.ReadAll(tc)
	if len(reply) >= 2 && reply[0] == wire.Magic0 && reply[1] == wire.Magic1 {
		t.Fatalf("the TLS listener answered a plaintext frame: %q", reply)
	}
}

// TestTLSMemberCannotPoseAsController: a server presenting a node's
// certificate of the cluster CA (a member posing as the controller) is
// refused by the clients' TLS configuration before any request is sent,
// while the controller's own certificate is accepted.
func TestTLSMemberCannotPoseAsController(t *testing.T) {
	dir := testPKI(t)
	fake, err := pki.ServerConfig(dir, "node")
	if err != nil {
		t.Fatal(err)
	}
	c := newTest(t, Config{TLS: fake})
	a, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	for _, member := range []string{"operator", "client"} {
		cfg, err := pki.ClientConfig(dir, member)
		if err != nil {
			t.Fatal(err)
		}
		mc := metaclient.New(a.String(), metaclient.Options{TLS: cfg, Logger: quietLog, RetryFor: -1})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = mc.Status(ctx)
		cancel()
		mc.Close()
		if err == nil {
			t.Fatalf("%s: status answered by a server with a node's certificate", member)
		}
	}
	genuine := tlsClient(t, dir, tlsController(t, dir), "operator", nil)
	if _, err := genuine.Status(context.Background()); err != nil {
		t.Fatalf("the controller's certificate: %v", err)
	}
}

// TestControlFrameLimitByRole: over TLS a peer without the node role (a
// job client's or operator's certificate) may send requests of at most
// wire.DefaultMaxMeta (64 KiB) of metadata, more than any of its requests
// holds; a node's frames may reach wire.DefaultControlMaxMeta (4 MiB).
// Before, every peer had 4 MiB: a hostile trial's 200 connections of a
// tenant's certificate, each holding all but the last byte of a 4 MiB
// frame, took the controller from 50 MB to 1.18 GB.
func TestControlFrameLimitByRole(t *testing.T) {
	dir := testPKI(t)
	addr := tlsController(t, dir)
	claim := func(member string, metaLen uint32) error {
		t.Helper()
		cfg, err := pki.ClientConfig(dir, member)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(2 * time.Second))
		h := wire.Header{Op: wire.OpRegisterJob, ID: 1, MetaLen: metaLen}
		if _, err := conn.Write(wire.AppendHeader(nil, &h)); err != nil {
			t.Fatal(err)
		}
		lim := wire.ControlLimits()
		rh, meta, err := wire.ReadControlFrame(bufio.NewReader(conn), &lim, nil)
		if err != nil {
			return err // no reply: the controller waits for the metadata
		}
		return wire.ReplyError(&rh, meta)
	}
	for _, member := range []string{"client", "operator"} {
		if err := claim(member, wire.DefaultMaxMeta+1); !errors.Is(err, wire.ErrTooLarge) {
			t.Errorf("a %s's frame claiming %d bytes of metadata: %v; want refused as too large", member, wire.DefaultMaxMeta+1, err)
		}
	}
	var ne net.Error
	if err := claim("node", 1<<20); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("a node's frame claiming 1 MiB: %v; want it taken (the controller waits for the rest)", err)
	}
}
