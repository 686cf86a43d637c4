package dataplane

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"
	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/nvme"
	"github.com/pocketstore/pocket/wire"
)

// startNode runs a node with a DRAM tier of capacity bytes on loopback.
func startNode(t testing.TB, capacity int64, guard Guard) *Node {
	t.Helper()
	d, err := NewDRAM(capacity, DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", DRAM: d, Guard: guard, Net: netio.Config{Loops: 2}}, d)
}

// fileNVMe makes an NVMe tier of options topts on a file in a temporary
// directory with device options opts (Size and BufferPool set by the
// caller), closed with its device when the test ends; it skips the test
// where the directory takes no O_DIRECT.
func fileNVMe(t testing.TB, opts nvme.Options, topts NVMeOptions) *NVMe {
	t.Helper()
	dir := t.TempDir()
	if err := nvme.ProbeDirectIO(dir); err != nil {
		t.Skipf("no direct I/O in %s: %v", dir, err)
	}
	dev, err := nvme.Open(filepath.Join(dir, "dev"), opts)
	if err != nil {
		t.Fatal(err)
	}
	tier, err := NewNVMe(dev, topts)
	if err != nil {
		dev.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tier.Close()
		dev.Close()
	})
	return tier
}

// startNodeWith runs a node of cfg; closers (its tiers, then their
// devices) are closed after it when the test ends, or at once if the node
// does not start.
func startNodeWith(t testing.TB, cfg NodeConfig, closers ...io.Closer) *Node {
	t.Helper()
	closeAll := func() {
		for _, c := range closers {
			c.Close()
		}
	}
	n, err := NewNode(cfg)
	if err != nil {
		closeAll()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.Close()
		closeAll()
	})
	return n
}

func dial(t testing.TB, n *Node, job string) *client.Conn {
	t.Helper()
	c, err := client.DialConn(context.Background(), n.Addr().String(), client.ConnOptions{Job: []byte(job)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends one request and reads its reply.
func roundTrip(t testing.TB, c *client.Conn, op wire.Op, flags uint16, req *wire.Request, payload []byte) client.Response {
	t.Helper()
	id, err := c.Send(op, flags, req, payload)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	r, err := c.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != id || r.Op != op.Reply() {
		t.Fatalf("reply id %d op %v, want %d %v", r.ID, r.Op, id, op.Reply())
	}
	return r
}

func TestNodePutGetSizes(t *testing.T) {
	n := startNode(t, 256<<20, nil)
	c := dial(t, n, "job-1")
	for _, size := range []int{0, 1, 100, 4095, 4096, 16 << 10, 16<<10 + 1, 1 << 20, 3<<20 + 7, 20 << 20} {
		key := []byte(fmt.Sprintf("k%d", size))
		val := bytes.Repeat([]byte{byte(size), 0xA5, 3}, size/3+1)[:size]
		if _, err := c.SendPut(key, val, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := c.SendGet(key); err != nil {
			t.Fatal(err)
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		if r, err := c.Recv(); err != nil || r.Code != wire.CodeOK {
			t.Fatalf("put %d: %v %v", size, err, r.Err())
		}
		r, err := c.Recv()
		if err != nil || r.Code != wire.CodeOK || !bytes.Equal(r.Payload, val) {
			t.Fatalf("get %d: err %v code %v len %d", size, err, r.Code, len(r.Payload))
		}
	}
}

func TestNodeErrors(t *testing.T) {
	n := startNode(t, 64<<20, nil)
	c := dial(t, n, "job-1")
	r := roundTrip(t, c, wire.OpGet, 0, &wire.Request{Job: []byte("job-1"), Key: []byte("missing")}, nil)
	if !errors.Is(r.Err(), wire.ErrNotFound) {
		t.Fatalf("missing key: %v", r.Err())
	}
	r = roundTrip(t, c, wire.OpGet, 0, &wire.Request{Key: []byte("k")}, nil)
	if !errors.Is(r.Err(), wire.ErrBadKey) {
		t.Fatalf("no job: %v", r.Err())
	}
	r = roundTrip(t, c, wire.Op(0x3E), 0, &wire.Request{Job: []byte("j"), Key: []byte("k")}, nil)
	if !errors.Is(r.Err(), wire.ErrUnknownOp) {
		t.Fatalf("unknown op: %v", r.Err())
	}
	r = roundTrip(t, c, wire.OpGet, wire.FlagTierNVMe, &wire.Request{Job: []byte("j"), Key: []byte("k")}, nil)
	if !errors.Is(r.Err(), wire.ErrUnsupported) {
		t.Fatalf("nvme on a dram node: %v", r.Err())
	}
	// The connection still works after errors.
	r = roundTrip(t, c, wire.OpPing, 0, &wire.Request{}, nil)
	if r.Code != wire.CodeOK {
		t.Fatalf("ping: %v", r.Err())
	}
}

func TestNodeNoSpaceKeepsData(t *testing.T) {
	n := startNode(t, 8<<20, nil)
	c := dial(t, n, "job-1")
	val := bytes.Repeat([]byte("x"), 1<<20)
	stored := 0
	for i := 0; ; i++ {
		r := roundTrip(t, c, wire.OpPut, 0, &wire.Request{Job: []byte("job-1"), Key: []byte(fmt.Sprint(i))}, val)
		if errors.Is(r.Err(), wire.ErrNoSpace) {
			break
		}
		if r.Code != wire.CodeOK || i > 64 {
			t.Fatalf("put %d: %v", i, r.Err())
		}
		stored++
	}
	if stored == 0 {
		t.Fatal("nothing fit")
	}
	// The refused payload was skipped: the stream is in step, and every
	// value stored before is intact.
	for i := 0; i < stored; i++ {
		r := roundTrip(t, c, wire.OpGet, 0, &wire.Request{Job: []byte("job-1"), Key: []byte(fmt.Sprint(i))}, nil)
		if r.Code != wire.CodeOK || !bytes.Equal(r.Payload, val) {
			t.Fatalf("value %d after no-space: %v", i, r.Err())
		}
	}
}

func TestNodeListDeleteDrop(t *testing.T) {
	n := startNode(t, 64<<20, nil)
	c := dial(t, n, "job-1")
	job := []byte("job-1")
	for _, k := range []string{"a/1", "a/2", "a/b/3", "c", "d/"} {
		flags := uint16(0)
		if k == "c" {
			flags = wire.FlagPersist
		}
		if r := roundTrip(t, c, wire.OpPut, flags, &wire.Request{Job: job, Key: []byte(k)}, []byte(k)); r.Code != 0 {
			t.Fatal(r.Err())
		}
	}
	r := roundTrip(t, c, wire.OpList, 0, &wire.Request{Job: job, Key: []byte("a/"), Delimiter: '/'}, nil)
	var resp wire.Response
	if err := wire.DecodeResponse(r.Meta, &resp); err != nil {
		t.Fatal(err)
	}
	got := ""
	for _, e := range resp.Entries {
		got += fmt.Sprintf("%s:%v ", e.Key, e.Dir)
	}
	if got != "a/1:false a/2:false a/b/:true " {
		t.Fatalf("list = %q", got)
	}
	r = roundTrip(t, c, wire.OpList, 0, &wire.Request{Job: job, Limit: 2}, nil)
	if err := wire.DecodeResponse(r.Meta, &resp); err != nil || len(resp.Entries) != 2 || !resp.More {
		t.Fatalf("limited list: %+v %v", resp, err)
	}
	r = roundTrip(t, c, wire.OpDelete, wire.FlagPrefix, &wire.Request{Job: job, Key: []byte("a/")}, nil)
	if err := wire.DecodeResponse(r.Meta, &resp); err != nil || resp.Count != 3 {
		t.Fatalf("delete prefix: %+v %v", resp, err)
	}
	r = roundTrip(t, c, wire.OpDropJob, 0, &wire.Request{Job: job}, nil)
	if err := wire.DecodeResponse(r.Meta, &resp); err != nil || resp.Count != 1 {
		t.Fatalf("drop job: %+v %v", resp, err)
	}
	if r := roundTrip(t, c, wire.OpGet, 0, &wire.Request{Job: job, Key: []byte("c")}, nil); r.Code != 0 {
		t.Fatalf("persistent key lost on drop: %v", r.Err())
	}
}

func TestNodeDeleteAfterRead(t *testing.T) {
	n := startNode(t, 64<<20, nil)
	c := dial(t, n, "j")
	req := &wire.Request{Job: []byte("j"), Key: []byte("once")}
	roundTrip(t, c, wire.OpPut, 0, req, []byte("v"))
	if r := roundTrip(t, c, wire.OpGet, wire.FlagDeleteAfterRead, req, nil); string(r.Payload) != "v" {
		t.Fatalf("first read: %v", r.Err())
	}
	if r := roundTrip(t, c, wire.OpGet, 0, req, nil); !errors.Is(r.Err(), wire.ErrNotFound) {
		t.Fatalf("second read: %v", r.Err())
	}
}

type fakeGuard struct{}

func (fakeGuard) CheckJob(job, token []byte) error {
	if string(token) != "ok-"+string(job) {
		return &wire.Error{Code: wire.CodeBadToken, Msg: "bad token"}
	}
	return nil
}

func (fakeGuard) CheckOrder(job []byte, o token.Order, proof []byte, now time.Time) (int64, error) {
	if string(proof) != "admin" {
		return 0, wire.ErrBadToken
	}
	return now.Add(time.Minute).UnixMilli(), nil
}

func TestNodeGuardAndEpoch(t *testing.T) {
	n := startNode(t, 64<<20, fakeGuard{})
	c := dial(t, n, "j")
	put := func(tok string, epoch uint64) error {
		r := roundTrip(t, c, wire.OpPut, 0, &wire.Request{Job: []byte("j"), Key: []byte("k"), Token: []byte(tok), Epoch: epoch}, []byte("v"))
		return r.Err()
	}
	if err := put("", 0); !errors.Is(err, wire.ErrBadToken) {
		t.Fatalf("no token: %v", err)
	}
	if err := put("ok-other", 0); !errors.Is(err, wire.ErrBadToken) {
		t.Fatalf("another job's token: %v", err)
	}
	if err := put("ok-j", 0); err != nil {
		t.Fatal(err)
	}
	n.SetEpoch("j", 5)
	err := put("ok-j", 4)
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeStaleEpoch || we.Epoch != 5 {
		t.Fatalf("stale epoch: %v", err)
	}
	if err := put("ok-j", 5); err != nil {
		t.Fatal(err)
	}
	if r := roundTrip(t, c, wire.OpDropJob, 0, &wire.Request{Job: []byte("j"), Token: []byte("ok-j")}, nil); !errors.Is(r.Err(), wire.ErrBadToken) {
		t.Fatalf("drop with a job token: %v", r.Err())
	}
}

// rawConn writes arbitrary bytes and reports what the node answered.
func rawExchange(t *testing.T, n *Node, b []byte) (wire.Header, error) {
	t.Helper()
	nc, err := net.Dial("tcp", n.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := nc.Write(b); err != nil {
		t.Fatal(err)
	}
	return readHeader(nc)
}

// readHeader reads and parses one reply's header from r.
func readHeader(r io.Reader) (wire.Header, error) {
	var hdr [wire.HeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return wire.Header{}, err
	}
	lim := wire.DefaultLimits()
	return wire.ParseHeader(hdr[:], &lim)
}

func TestNodeBadInput(t *testing.T) {
	n := startNode(t, 64<<20, nil)
	good := wire.AppendHeader(nil, &wire.Header{Op: wire.OpPing, ID: 9})
	cases := map[string]struct {
		b    []byte
		code wire.Code
	}{
		"wrong magic":   {append([]byte("XX"), good[2:]...), wire.CodeMalformed},
		"wrong version": {append(append([]byte("PK"), 7), good[3:]...), wire.CodeVersion},
		"huge meta":     {wire.AppendHeader(nil, &wire.Header{Op: wire.OpGet, MetaLen: 1 << 30}), wire.CodeTooLarge},
		"huge payload":  {wire.AppendHeader(nil, &wire.Header{Op: wire.OpPut, PayloadLen: 1<<32 - 1}), wire.CodeTooLarge},
		"reply opcode":  {wire.AppendHeader(nil, &wire.Header{Op: wire.OpGet.Reply()}), wire.CodeMalformed},
		"bad meta":      {append(wire.AppendHeader(nil, &wire.Header{Op: wire.OpGet, MetaLen: 8}), 0xFF, 0xFF, 0, 0, 1, 2, 3, 4), wire.CodeMalformed},
		"get with body": {append(wire.AppendHeader(nil, &wire.Header{Op: wire.OpGet, PayloadLen: 1}), 'x'), wire.CodeMalformed},
	}
	for name, tc := range cases {
		h, err := rawExchange(t, n, tc.b)
		if err != nil || h.Code != tc.code {
			t.Errorf("%s: reply %+v, err %v; want code %v", name, h, err, tc.code)
		}
	}
	// A truncated frame that never completes gets no reply, and the node
	// keeps serving others.
	nc, err := net.Dial("tcp", n.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	hdr := wire.AppendHeader(nil, &wire.Header{Op: wire.OpPut, MetaLen: 0, PayloadLen: 1 << 20})
	nc.Write(append(hdr, make([]byte, 1000)...))
	c := dial(t, n, "j")
	if r := roundTrip(t, c, wire.OpPing, 0, &wire.Request{}, nil); r.Code != 0 {
		t.Fatal(r.Err())
	}
	nc.Close()
	// The aborted put left nothing behind.
	waitFor(t, func() bool { return n.cfg.DRAM.Usage().Used == 0 })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNodeRandomBytes(t *testing.T) {
	n := startNode(t, 64<<20, nil)
	for seed := uint64(1); seed <= 50; seed++ {
		b := make([]byte, 200)
		x := seed
		for i := range b {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			b[i] = byte(x)
		}
		if seed%2 == 0 { // sometimes a valid magic and version, garbage after
			copy(b, "PK\x01")
		}
		nc, err := net.Dial("tcp", n.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		nc.Write(b)
		nc.Close()
	}
	c := dial(t, n, "j")
	if r := roundTrip(t, c, wire.OpPing, 0, &wire.Request{}, nil); r.Code != 0 {
		t.Fatal(r.Err())
	}
}

// BenchmarkNodeGet1KiB measures a pipelined 1 KiB get over loopback; the
// client side allocates nothing, so allocs/op is the server's hot path.
func BenchmarkNodeGet1KiB(b *testing.B) { benchNode(b, wire.OpGet, 1<<10) }

// BenchmarkNodePut1KiB is the same for puts overwriting existing keys.
func BenchmarkNodePut1KiB(b *testing.B) { benchNode(b, wire.OpPut, 1<<10) }

// BenchmarkNodeGet1MiB moves 1 MiB values by reference through writev.
func BenchmarkNodeGet1MiB(b *testing.B) { benchNode(b, wire.OpGet, 1<<20) }

func benchNode(b *testing.B, op wire.Op, size int) {
	n := startNode(b, 1<<30, nil)
	c := dial(b, n, "bench")
	val := make([]byte, size)
	const keys, depth = 64, 16
	key := make([][]byte, keys)
	for i := range key {
		key[i] = strconv.AppendInt([]byte("key-"), int64(i), 10) // printable: a NUL marks a chunk key, which a plain put may not use
		c.SendPut(key[i], val, 0)
	}
	c.Flush()
	for range key {
		if r, err := c.Recv(); err != nil || r.Code != 0 {
			b.Fatal(err, r.Err())
		}
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += depth {
		batch := min(depth, b.N-i)
		for k := 0; k < batch; k++ {
			if op == wire.OpGet {
				c.SendGet(key[(i+k)%keys])
			} else {
				c.SendPut(key[(i+k)%keys], val, 0)
			}
		}
		if err := c.Flush(); err != nil {
			b.Fatal(err)
		}
		for k := 0; k < batch; k++ {
			if r, err := c.Recv(); err != nil || r.Code != 0 {
				b.Fatal(err, r.Err())
			}
		}
	}
}

// TestNodeSlowReader: a client that sends gets of 1 MiB values and never
// reads the replies is paused at the output limit; its queued bytes stay
// bounded and everyone else is still served.
func TestNodeSlowReader(t *testing.T) {
	n := startNode(t, 64<<20, nil)
	c := dial(t, n, "j")
	val := make([]byte, 1<<20)
	if r := roundTrip(t, c, wire.OpPut, 0, &wire.Request{Job: []byte("j"), Key: []byte("big")}, val); r.Code != 0 {
		t.Fatal(r.Err())
	}
	hog, err := net.Dial("tcp", n.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer hog.Close()
	e := wire.NewEncoder()
	meta := e.Request(&wire.Request{Job: []byte("j"), Key: []byte("big")})
	frame := append(wire.AppendHeader(nil, &wire.Header{Op: wire.OpGet, MetaLen: uint32(len(meta))}), meta...)
	hog.SetWriteDeadline(time.Now().Add(2 * time.Second))
	for i := 0; i < 200; i++ { // asks for 200 MiB it never reads
		if _, err := hog.Write(frame); err != nil {
			break // the node stopped reading us: that is the point
		}
	}
	waitFor(t, func() bool { return n.Stats().Net.Paused > 0 })
	if r := roundTrip(t, c, wire.OpGet, 0, &wire.Request{Job: []byte("j"), Key: []byte("big")}, nil); r.Code != 0 || len(r.Payload) != 1<<20 {
		t.Fatalf("other client while one hogs: %v", r.Err())
	}
	// Gets hold references to the value while queued; the tier is not
	// charged for them, and nothing was copied 200 times.
	if u := n.cfg.DRAM.Usage(); u.Used > 2<<20 {
		t.Fatalf("tier use %d bytes with one 1 MiB value stored", u.Used)
	}
}

// TestNodeManyIdleConns opens 2000 idle connections; the node keeps
// serving.
func TestNodeManyIdleConns(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < 5000 {
		lim.Cur = min(lim.Max, 5000)
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < 4200 {
		t.Skipf("cannot raise the open-file limit to 4200 (have %d)", lim.Cur)
	}
	n := startNode(t, 16<<20, nil)
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for i := 0; i < 2000; i++ {
		nc, err := net.Dial("tcp", n.Addr().String())
		if err != nil {
			t.Fatalf("conn %d: %v", i, err)
		}
		idle = append(idle, nc)
	}
	waitFor(t, func() bool { return n.Stats().Net.Open >= 2000 })
	c := dial(t, n, "j")
	if r := roundTrip(t, c, wire.OpPing, 0, &wire.Request{}, nil); r.Code != 0 {
		t.Fatal(r.Err())
	}
}

// TestControlRequestToANodeSaysSo: a control-plane request sent to a
// storage node (a client given a node's address for the controller's) is
// refused as an unknown op whose message names the controller. Before,
// it read "request names no job".
func TestControlRequestToANodeSaysSo(t *testing.T) {
	n := tokenNode(t)
	c := dial(t, n, "")
	for _, op := range []wire.Op{wire.OpStatus, wire.OpRegisterJob, wire.OpHeartbeat} {
		r := roundTrip(t, c, op, 0, &wire.Request{}, nil)
		if r.Code != wire.CodeUnknownOp || !strings.Contains(r.Err().Error(), "controller") {
			t.Fatalf("%v sent to a node: %v %v, want an unknown op naming the controller", op, r.Code, r.Err())
		}
	}
	// A real control message, whose metadata does not decode as a request,
	// alone and with a payload to skip, then a ping on the same connection. Before,
	// the node answered "malformed frame: Request: vector out of bounds"
	// (a CI run, a CLI given a node's port for the controller's).
	nc, err := net.Dial("tcp", n.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	reg := (&wire.NodeRegister{Addr: "127.0.0.1:1", Incarnation: 3, Cores: 2,
		Tiers: []wire.TierStat{{Kind: uint8(wire.TierDRAM), CapacityBytes: 1 << 30}}}).Encode(flatbuffers.NewBuilder(0))
	frame := wire.AppendControlFrame(nil, wire.OpRegisterNode, 5, 0, reg)
	frame = wire.AppendHeader(frame, &wire.Header{Op: wire.OpRegisterNode, ID: 6, MetaLen: uint32(len(reg)), PayloadLen: 3 << 20})
	frame = append(append(frame, reg...), make([]byte, 3<<20)...)
	frame = append(frame, hostileFrame(wire.OpPing, 0, 7, &wire.Request{}, nil)...)
	go nc.Write(frame)
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(nc)
	lim := wire.DefaultLimits()
	for _, want := range []uint64{5, 6, 7} {
		h, meta, err := wire.ReadControlFrame(br, &lim, nil)
		if err != nil {
			t.Fatalf("reply %d: %v", want, err)
		}
		err = wire.ReplyError(&h, meta)
		switch {
		case h.ID != want:
			t.Fatalf("reply for %d, want %d", h.ID, want)
		case want < 7 && (h.Code != wire.CodeUnknownOp || !strings.Contains(err.Error(), "request for the controller")):
			t.Fatalf("node registration sent to a node: %v %v, want an unknown op naming the controller", h.Code, err)
		case want == 7 && err != nil:
			t.Fatalf("ping after it: %v", err)
		}
	}
}
