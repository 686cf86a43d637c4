package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

func node(t *testing.T) *dataplane.Node {
	t.Helper()
	d, err := dataplane.NewDRAM(256<<20, dataplane.DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", DRAM: d, Net: netio.Config{Loops: 2}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(); d.Close() })
	return n
}

// TestManyCallersOneConn runs many goroutines over one connection: each
// caller must get its own reply whoever happens to read it.
func TestManyCallersOneConn(t *testing.T) {
	n := node(t)
	c := client.New(client.Options{ConnsPerNode: 1})
	defer c.Close()
	ctx := context.Background()
	addr := n.Addr().String()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				key := []byte(fmt.Sprintf("g%d-%d", g, i))
				val := bytes.Repeat(key, 1+i*37%500)
				req := wire.Request{Job: []byte("j"), Key: key}
				if _, err := c.Do(ctx, addr, wire.OpPut, 0, &req, val, nil); err != nil {
					errs <- err
					return
				}
				r, err := c.Do(ctx, addr, wire.OpGet, 0, &req, nil, nil)
				if err != nil || !bytes.Equal(r.Payload, val) {
					errs <- fmt.Errorf("get %s: %v (len %d want %d)", key, err, len(r.Payload), len(val))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestErrorsAndCancel(t *testing.T) {
	n := node(t)
	c := client.New(client.Options{})
	defer c.Close()
	addr := n.Addr().String()
	req := wire.Request{Job: []byte("j"), Key: []byte("missing")}
	if _, err := c.Do(context.Background(), addr, wire.OpGet, 0, &req, nil, nil); !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Do(ctx, addr, wire.OpPing, 0, &wire.Request{}, nil, nil); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v", err)
	}
	// The connection is still usable after a cancelled call.
	if _, err := c.Do(context.Background(), addr, wire.OpPing, 0, &wire.Request{}, nil, nil); err != nil {
		t.Fatal(err)
	}
}

func TestDeadNode(t *testing.T) {
	n := node(t)
	c := client.New(client.Options{DialTimeout: time.Second})
	defer c.Close()
	addr := n.Addr().String()
	if _, err := c.Do(context.Background(), addr, wire.OpPing, 0, &wire.Request{}, nil, nil); err != nil {
		t.Fatal(err)
	}
	n.Close()
	_, err := c.Do(context.Background(), addr, wire.OpPing, 0, &wire.Request{}, nil, nil)
	if !errors.Is(err, wire.ErrUnavailable) || !bytes.Contains([]byte(err.Error()), []byte(addr)) {
		t.Fatalf("dead node: %v", err)
	}
}

func TestPayloadLimit(t *testing.T) {
	lim := wire.DefaultLimits()
	lim.MaxPayload = 10
	c := client.New(client.Options{Limits: &lim})
	defer c.Close()
	n := node(t)
	_, err := c.Do(context.Background(), n.Addr().String(), wire.OpPut, 0, &wire.Request{Job: []byte("j"), Key: []byte("k")}, make([]byte, 11), nil)
	if !errors.Is(err, wire.ErrTooLarge) {
		t.Fatalf("oversized payload: %v", err)
	}
}

// TestCancelSilentNode: a node that accepts and never answers must not hold
// a caller past its context, even when that caller is the one reading.
func TestCancelSilentNode(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // read nothing, answer nothing
		}
	}()
	c := client.New(client.Options{ConnsPerNode: 1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = c.Do(ctx, ln.Addr().String(), wire.OpPing, 0, &wire.Request{}, nil, nil)
	if err == nil {
		t.Fatal("a silent node answered")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("call returned after %v, its context ended after 200ms", d)
	}
}

// value is the deterministic content of key in the tests below.
func value(key string, size int) []byte {
	v := make([]byte, size)
	period := len(key) << 18 // a multiple of len(key) and of 256 KiB
	for i := range v[:min(size, period)] {
		v[i] = key[i%len(key)] ^ byte(i>>10)
	}
	for i := period; i < size; { // repeat it (fast under the race detector)
		i += copy(v[i:], v[:i])
	}
	return v
}

// firstNot returns the index of the first byte of b that is not v, or -1.
func firstNot(b []byte, v byte) int {
	for i, x := range b {
		if x != v {
			return i
		}
	}
	return -1
}

// testSizes are the value sizes of TestImpatientCallersDoNotFailOthers,
// up to 256 KiB so that a short deadline sometimes ends while a reply is
// half read.
var testSizes = []int{1 << 10, 4 << 10, 64 << 10, 256 << 10}

// TestImpatientCallersDoNotFailOthers: half the goroutines on one
// connection cancel their calls after 0-2 ms, often while reading replies
// for everyone; the other half, with no deadline, must never fail, every
// successful get must return the value's bytes, and a cancelled call must
// not write its dst after it returned. (It is a check of independence, not
// of speed: it runs for a fixed second whatever the machine.)
func TestImpatientCallersDoNotFailOthers(t *testing.T) {
	for _, conns := range []int{1, 2} {
		t.Run(fmt.Sprintf("conns=%d", conns), func(t *testing.T) { impatient(t, conns) })
	}
}

func impatient(t *testing.T, conns int) {
	n := node(t)
	c := client.New(client.Options{ConnsPerNode: conns})
	defer c.Close()
	addr := n.Addr().String()
	const keys = 8
	vals := make([][]byte, keys)
	for k := range vals {
		vals[k] = value(fmt.Sprintf("v%d", k), testSizes[k%len(testSizes)])
	}
	put := func(ctx context.Context, k int) error {
		req := wire.Request{Job: []byte("j"), Key: fmt.Appendf(nil, "v%d", k)}
		_, err := c.Do(ctx, addr, wire.OpPut, 0, &req, vals[k], nil)
		return err
	}
	get := func(ctx context.Context, k int, dst []byte) error {
		req := wire.Request{Job: []byte("j"), Key: fmt.Appendf(nil, "v%d", k)}
		r, err := c.Do(ctx, addr, wire.OpGet, 0, &req, nil, dst)
		if err == nil && !bytes.Equal(r.Payload, vals[k]) {
			return fmt.Errorf("get v%d: wrong bytes (%d long)", k, len(r.Payload))
		}
		return err
	}
	for k := 0; k < keys; k++ {
		if err := put(context.Background(), k); err != nil {
			t.Fatal(err)
		}
	}
	accepted := n.Stats().Net.Accepted
	var (
		mu                   sync.Mutex
		patientFail, calls   int
		cancelled, finished  int
		firstErr, patientErr error
		slowest              time.Duration
	)
	report := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	end := time.Now().Add(time.Second)
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := make([]byte, 256<<10)
			sentinel := bytes.Repeat([]byte{0xA5}, len(dst))
			for i := 0; time.Now().Before(end); i++ {
				k := (g + i) % keys
				if g%2 == 0 { // patient: no deadline, must never fail
					var err error
					start := time.Now()
					if i%4 == 3 {
						err = put(context.Background(), k)
					} else {
						err = get(context.Background(), k, dst)
					}
					mu.Lock()
					slowest = max(slowest, time.Since(start))
					calls++
					if err != nil {
						patientFail++
						if patientErr == nil {
							patientErr = err
						}
					}
					mu.Unlock()
					continue
				}
				// impatient: a deadline or a cancel 0-2 ms away
				wait := time.Duration(i*7919%2000) * time.Microsecond
				var ctx context.Context
				var cancel context.CancelFunc
				if i%2 == 0 {
					ctx, cancel = context.WithTimeout(context.Background(), wait)
				} else {
					ctx, cancel = context.WithCancel(context.Background())
					time.AfterFunc(wait, cancel)
				}
				var err error
				if i%4 == 3 {
					err = put(ctx, k)
				} else {
					err = get(ctx, k, dst)
				}
				cancel()
				mu.Lock()
				if err != nil {
					cancelled++
				} else {
					finished++
				}
				mu.Unlock()
				if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
					report(fmt.Errorf("impatient caller: not its context's error: %w", err))
				}
				if err != nil { // dst is ours again: nobody may write it now
					copy(dst, sentinel)
					runtime.Gosched()
					if !bytes.Equal(dst, sentinel) {
						report(fmt.Errorf("a cancelled get's dst was written after it returned"))
					}
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("patient calls %d (failed %d, slowest %v); impatient calls finished %d, cancelled %d; connections opened %d",
		calls, patientFail, slowest, finished, cancelled, n.Stats().Net.Accepted-accepted)
	if patientFail > 0 {
		t.Errorf("%d of %d calls without a deadline failed; first error: %v", patientFail, calls, patientErr)
	}
	if firstErr != nil {
		t.Errorf("cancelled callers: %v", firstErr)
	}
	if cancelled == 0 || calls == 0 {
		t.Fatalf("the test cancelled %d calls and made %d patient ones: it tested nothing", cancelled, calls)
	}
	if got := n.Stats().Net.Accepted - accepted; got != 0 {
		t.Fatalf("cancellations made the client open %d new connections", got)
	}
}

// TestCancelledSiblingsThenSmallGet is the reported symptom: gets of an
// object's chunks share a context that is cancelled when one chunk is
// missing; the next small get, with no deadline, must not pay for it.
func TestCancelledSiblingsThenSmallGet(t *testing.T) {
	n := node(t)
	c := client.New(client.Options{})
	defer c.Close()
	addr := n.Addr().String()
	bg := context.Background()
	for k := 0; k < 3; k++ {
		key := fmt.Sprintf("chunk%d", k)
		req := wire.Request{Job: []byte("j"), Key: []byte(key)}
		if _, err := c.Do(bg, addr, wire.OpPut, 0, &req, value(key, 1<<20), nil); err != nil {
			t.Fatal(err)
		}
	}
	small := wire.Request{Job: []byte("j"), Key: []byte("small")}
	if _, err := c.Do(bg, addr, wire.OpPut, 0, &small, []byte("small value"), nil); err != nil {
		t.Fatal(err)
	}
	failed := 0
	var firstErr error
	for i := 0; i < 200; i++ {
		ctx, cancel := context.WithCancel(bg)
		var wg sync.WaitGroup
		for k := 0; k < 4; k++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				key := fmt.Sprintf("chunk%d", k) // chunk3 is missing
				req := wire.Request{Job: []byte("j"), Key: []byte(key)}
				if _, err := c.Do(ctx, addr, wire.OpGet, 0, &req, nil, nil); err != nil {
					cancel()
				}
			}()
		}
		wg.Wait()
		cancel()
		r, err := c.Do(bg, addr, wire.OpGet, 0, &small, nil, nil)
		if err == nil && string(r.Payload) != "small value" {
			err = fmt.Errorf("wrong value %q", r.Payload)
		}
		if err != nil {
			failed++
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	if failed > 0 {
		t.Fatalf("%d of 200 small gets failed after a cancelled object get; first: %v", failed, firstErr)
	}
}

// fakeNode answers gets on loopback with value(key, size), each request in
// its own goroutine so that replies can overtake each other. Replies to keys
// starting with "slow" wait for slow to close; the reply to "stall" sends
// its header and half its 1 MiB payload, then holds the connection (no other
// reply can pass) until stall closes. After a request for "pause" it reads
// nothing more until resume closes. It checks that a put's payload is
// value(key, len) and reports it on puts.
type fakeNode struct {
	ln                  net.Listener
	accepts             atomic.Int32
	got                 chan string // keys of the requests received
	puts                chan error
	stalled             chan struct{}
	slow, stall, resume chan struct{}
}

func newFakeNode(t *testing.T) *fakeNode {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeNode{ln: ln, got: make(chan string, 1024), puts: make(chan error, 16), stalled: make(chan struct{}, 1),
		slow: make(chan struct{}), stall: make(chan struct{}), resume: make(chan struct{})}
	var conns sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		for _, ch := range []chan struct{}{f.slow, f.stall, f.resume} {
			select {
			case <-ch:
			default:
				close(ch)
			}
		}
		conns.Wait()
	})
	conns.Add(1)
	go func() {
		defer conns.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			f.accepts.Add(1)
			conns.Add(1)
			go func() {
				defer conns.Done()
				f.serve(nc)
			}()
		}
	}()
	return f
}

func (f *fakeNode) serve(nc net.Conn) {
	defer nc.Close()
	lim := wire.DefaultLimits()
	var wmu sync.Mutex
	var replies sync.WaitGroup
	defer replies.Wait()
	for {
		h, req, body, err := readRequest(nc, &lim)
		if err != nil {
			return
		}
		key := string(req.Key)
		f.got <- key
		if h.Op == wire.OpPut {
			var err error
			if !bytes.Equal(body[h.MetaLen:], value(key, int(h.PayloadLen))) {
				err = fmt.Errorf("put %s: the node received other bytes than the caller's value", key)
			}
			f.puts <- err
		}
		replies.Add(1)
		go func() {
			defer replies.Done()
			size := 1 << 10
			switch {
			case key == "stall":
				size = 1 << 20
			case h.Op != wire.OpGet:
				size = 0
			}
			frame := wire.AppendHeader(nil, &wire.Header{Op: h.Op.Reply(), ID: h.ID, PayloadLen: uint32(size)})
			frame = append(frame, value(key, size)...)
			if strings.HasPrefix(key, "slow") {
				<-f.slow
			}
			wmu.Lock()
			defer wmu.Unlock()
			if key == "stall" {
				half := wire.HeaderLen + size/2
				if _, err := nc.Write(frame[:half]); err != nil {
					return
				}
				f.stalled <- struct{}{}
				<-f.stall
				frame = frame[half:]
			}
			nc.Write(frame)
		}()
		if key == "pause" {
			<-f.resume
		}
	}
}

// readRequest reads one request frame from r: its header, request and
// body (metadata, then payload).
func readRequest(r io.Reader, lim *wire.Limits) (wire.Header, wire.Request, []byte, error) {
	var hdr [wire.HeaderLen]byte
	var req wire.Request
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return wire.Header{}, req, nil, err
	}
	h, err := wire.ParseHeader(hdr[:], lim)
	if err != nil {
		return h, req, nil, err
	}
	body := make([]byte, int(h.MetaLen)+int(h.PayloadLen))
	if _, err := io.ReadFull(r, body); err != nil {
		return h, req, nil, err
	}
	return h, req, body, wire.DecodeRequest(body[:h.MetaLen], lim, &req)
}

func (f *fakeNode) get(ctx context.Context, c *client.Client, key string, dst []byte) error {
	req := wire.Request{Job: []byte("j"), Key: []byte(key)}
	r, err := c.Do(ctx, f.ln.Addr().String(), wire.OpGet, 0, &req, nil, dst)
	if err != nil {
		return err
	}
	size := 1 << 10
	if key == "stall" {
		size = 1 << 20
	}
	if !bytes.Equal(r.Payload, value(key, size)) {
		return fmt.Errorf("get %s: wrong bytes", key)
	}
	return nil
}

// waitKey waits until the fake node has received a request for key.
func (f *fakeNode) waitKey(t *testing.T, key string) {
	t.Helper()
	for {
		select {
		case k := <-f.got:
			if k == key {
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the node never received %s", key)
		}
	}
}

// TestCancelledReaderSlowNode: the caller reading replies for everyone is
// cancelled while its own reply is late; a call in flight on the same
// connection, with no deadline, still gets its reply, and the connection is
// kept.
func TestCancelledReaderSlowNode(t *testing.T) {
	f := newFakeNode(t)
	c := client.New(client.Options{ConnsPerNode: 1})
	defer c.Close()
	bg := context.Background()
	if err := f.get(bg, c, "k0", nil); err != nil {
		t.Fatal(err)
	}
	f.waitKey(t, "k0")
	ctxA, cancelA := context.WithCancel(bg)
	errA := make(chan error, 1)
	go func() { errA <- f.get(ctxA, c, "slow-a", nil) }()
	f.waitKey(t, "slow-a")
	errB := make(chan error, 1)
	go func() { errB <- f.get(bg, c, "slow-b", nil) }()
	f.waitKey(t, "slow-b")
	for i := 0; i < 20; i++ { // A reads these for their callers, or hands over
		if err := f.get(bg, c, fmt.Sprintf("k%d", i), nil); err != nil {
			t.Fatalf("fast get while a reader waits on a late reply: %v", err)
		}
	}
	cancelA()
	if err := <-errA; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v", err)
	}
	close(f.slow) // slow-a's reply is now read for nobody, slow-b's for B
	if err := <-errB; err != nil {
		t.Fatalf("a call in flight when another caller was cancelled: %v", err)
	}
	for i := 0; i < 20; i++ {
		if err := f.get(bg, c, fmt.Sprintf("k%d", i), nil); err != nil {
			t.Fatalf("get after the cancellation: %v", err)
		}
	}
	if n := f.accepts.Load(); n != 1 {
		t.Fatalf("a cancellation failed the connection: %d connections opened", n)
	}
}

// TestCancelMidReply: a caller whose reply is half read (the node stalls in
// the middle of it) leaves as soon as it is cancelled, whoever is reading;
// its dst is not written after it returned; the caller that was reading
// gets its own reply once the node goes on, on the same connection. When
// the reading caller is cancelled too, nobody waits any more and the rest
// of both replies is read for nobody: the connection still serves the next
// call.
func TestCancelMidReply(t *testing.T) {
	t.Run("owner", func(t *testing.T) { cancelMidReply(t, false) })
	t.Run("owner-and-reader", func(t *testing.T) { cancelMidReply(t, true) })
}

func cancelMidReply(t *testing.T, cancelReader bool) {
	f := newFakeNode(t)
	c := client.New(client.Options{ConnsPerNode: 1})
	defer c.Close()
	bg := context.Background()
	if err := f.get(bg, c, "k0", nil); err != nil {
		t.Fatal(err)
	}
	f.waitKey(t, "k0")
	ctxA, cancelA := context.WithCancel(bg)
	defer cancelA()
	errA := make(chan error, 1)
	go func() { errA <- f.get(ctxA, c, "slow-a", nil) }()
	f.waitKey(t, "slow-a")
	ctxC, cancelC := context.WithCancel(bg)
	dst := make([]byte, 1<<20)
	errC := make(chan error, 1)
	go func() {
		err := f.get(ctxC, c, "stall", dst)
		if err != nil { // dst is the caller's again
			for i := range dst {
				dst[i] = 0xEE
			}
		}
		errC <- err
	}()
	<-f.stalled
	time.Sleep(20 * time.Millisecond) // let the reader read into the stalled reply
	if cancelReader {
		cancelA()
	}
	cancelC()
	var err error
	select {
	case err = <-errC:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("caller cancelled mid-reply: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("a caller cancelled mid-reply did not return until the node went on")
		close(f.stall)
		err = <-errC
	}
	if cancelReader {
		if err := <-errA; !errors.Is(err, context.Canceled) {
			t.Errorf("the reading caller, cancelled: %v", err)
		}
	}
	select {
	case <-f.stall:
	default:
		close(f.stall)
	}
	close(f.slow)
	if !cancelReader {
		if err := <-errA; err != nil {
			t.Fatalf("the reading caller: %v", err)
		}
	}
	if err := f.get(bg, c, "k1", nil); err != nil {
		t.Fatal(err)
	}
	if i := firstNot(dst, 0xEE); err != nil && i >= 0 {
		t.Fatalf("the cancelled caller's dst was written after it returned (byte %d)", i)
	}
	if n := f.accepts.Load(); n != 1 {
		t.Fatalf("a cancellation failed the connection: %d connections opened", n)
	}
}

// TestCancelMidWrite: a caller whose request frame is half written (the
// node stopped reading) leaves when cancelled; the rest of its frame is
// still sent, from a copy (the node receives the value the caller gave,
// though the caller overwrote it after returning), so that the connection
// stays whole for the caller queued behind it.
func TestCancelMidWrite(t *testing.T) {
	f := newFakeNode(t)
	c := client.New(client.Options{ConnsPerNode: 1})
	defer c.Close()
	bg := context.Background()
	if err := f.get(bg, c, "pause", nil); err != nil {
		t.Fatal(err)
	}
	f.waitKey(t, "pause")       // the node reads no more until resume
	big := value("big", 16<<20) // more than the socket buffers hold
	ctxP, cancelP := context.WithCancel(bg)
	errP := make(chan error, 1)
	go func() {
		req := wire.Request{Job: []byte("j"), Key: []byte("big")}
		_, err := c.Do(ctxP, f.ln.Addr().String(), wire.OpPut, 0, &req, big, nil)
		if err != nil { // the value is the caller's again
			copy(big, bytes.Repeat([]byte{0xEE}, len(big)))
		}
		errP <- err
	}()
	time.Sleep(100 * time.Millisecond) // let the write fill the socket buffers
	errQ := make(chan error, 1)
	go func() { errQ <- f.get(bg, c, "k1", nil) }() // queued behind the put
	cancelP()
	select {
	case err := <-errP:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("caller cancelled mid-write: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("a caller cancelled mid-write did not return until the node read again")
		close(f.resume)
		<-errP
	}
	select {
	case <-f.resume:
	default:
		close(f.resume)
	}
	if err := <-f.puts; err != nil {
		t.Fatal(err)
	}
	if err := <-errQ; err != nil {
		t.Fatalf("the call queued behind a cancelled write: %v", err)
	}
	if err := f.get(bg, c, "k2", nil); err != nil {
		t.Fatal(err)
	}
	if n := f.accepts.Load(); n != 1 {
		t.Fatalf("a cancellation failed the connection: %d connections opened", n)
	}
}

// BenchmarkDo is a 1 KiB get through the Client on one connection: serial
// (one caller, who reads its own reply) and parallel (callers multiplexed,
// each reply read by whichever caller is reading).
func BenchmarkDo(b *testing.B) {
	d, err := dataplane.NewDRAM(64<<20, dataplane.DRAMOptions{})
	if err != nil {
		b.Fatal(err)
	}
	n, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", DRAM: d, Net: netio.Config{Loops: 2}})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	defer n.Close()
	c := client.New(client.Options{ConnsPerNode: 1})
	defer c.Close()
	addr, ctx := n.Addr().String(), context.Background()
	req := wire.Request{Job: []byte("j"), Key: []byte("k")}
	val := make([]byte, 1<<10)
	if _, err := c.Do(ctx, addr, wire.OpPut, 0, &req, val, nil); err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		dst := make([]byte, 1<<10)
		for b.Loop() {
			if r, err := c.Do(ctx, addr, wire.OpGet, 0, &req, nil, dst); err != nil || len(r.Payload) != len(val) {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			dst := make([]byte, 1<<10)
			for pb.Next() {
				if r, err := c.Do(ctx, addr, wire.OpGet, 0, &req, nil, dst); err != nil || len(r.Payload) != len(val) {
					b.Fatal(err)
				}
			}
		})
	})
}

// TestIdleConnectionRedialled: a node closes connections idle past its
// idle timeout; a client whose pooled connection sat unused past MaxIdle
// dials again instead of failing its next request on the closed one. So
// does one that never redials for idleness (MaxIdle -1) once the node's
// close has arrived (closedByPeer; before, that request failed).
func TestIdleConnectionRedialled(t *testing.T) {
	d, err := dataplane.NewDRAM(16<<20, dataplane.DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", DRAM: d,
		Net: netio.Config{Loops: 1, IdleTimeout: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(); d.Close() })
	addr := n.Addr().String()
	for _, maxIdle := range []time.Duration{-1, 100 * time.Millisecond} {
		c := client.New(client.Options{ConnsPerNode: 1, MaxIdle: maxIdle})
		req := wire.Request{Job: []byte("j"), Key: []byte("k")}
		if _, err := c.Do(context.Background(), addr, wire.OpPut, 0, &req, []byte("v"), nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // the node closes the idle connection
		_, err := c.Do(context.Background(), addr, wire.OpGet, 0, &req, nil, nil)
		if err != nil {
			t.Fatalf("MaxIdle %v: get after the node's idle timeout: %v", maxIdle, err)
		}
		c.Close()
	}
}

// startNode starts a DRAM node (16 MiB, one loop) on loopback for the
// test and returns its address.
func startNode(t *testing.T) string {
	t.Helper()
	d, err := dataplane.NewDRAM(16<<20, dataplane.DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", DRAM: d, Net: netio.Config{Loops: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(); d.Close() })
	return n.Addr().String()
}

// TestCallBetweenIdleLookAndPeek (hostile trial): a caller handed a
// pooled connection registers, sends and has its reply arrive while the
// pool, handing the same connection to another caller, looks at it as
// idle. Both calls succeed. Before, the pool's peek, after its look at the
// calls in flight, took the first call's reply for bytes nobody asked for
// and failed that call ("connection closed by the node while idle"; 3
// calls in 314,519 on healthy nodes in the trial).
func TestCallBetweenIdleLookAndPeek(t *testing.T) {
	addr := startNode(t)
	c := client.New(client.Options{ConnsPerNode: 1, MaxIdle: -1})
	defer c.Close()
	ctx := context.Background()
	req := wire.Request{Job: []byte("j"), Key: []byte("k")}
	if _, err := c.Do(ctx, addr, wire.OpPut, 0, &req, []byte("v"), nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * client.IdleCheck)
	first, undo := client.GetDuringIdlePeek(&req, 100*time.Millisecond)
	defer undo()
	if _, err := c.Do(ctx, addr, wire.OpGet, 0, &req, nil, nil); err != nil {
		t.Errorf("the get handed the connection after the look: %v", err)
	}
	select {
	case err := <-first:
		if err != nil {
			t.Errorf("the get on the connection during the look: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the get on the connection during the look did not return")
	}
}

// TestCallOnAConnectionRetiredMeanwhile (hostile trial): a caller handed
// a pooled connection that has gone idle past MaxIdle before the caller
// put its call on it is not failed, and the connection is not retired
// under it (inHand) when the pool looks at it for another caller. Before, it failed
// "connection idle past MaxIdle; redialled" (224 of 586,586 calls with
// MaxIdle 1 ms in the trial).
func TestCallOnAConnectionRetiredMeanwhile(t *testing.T) {
	addr := startNode(t)
	c := client.New(client.Options{ConnsPerNode: 1, MaxIdle: 20 * time.Millisecond})
	defer c.Close()
	ctx := context.Background()
	req := wire.Request{Job: []byte("j"), Key: []byte("k")}
	if _, err := c.Do(ctx, addr, wire.OpPut, 0, &req, []byte("v"), nil); err != nil {
		t.Fatal(err)
	}
	held, retired, err := client.HoldConn(ctx, c, addr)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond) // past MaxIdle: the next caller's pool look would retire it
	if _, err := c.Do(ctx, addr, wire.OpGet, 0, &req, nil, nil); err != nil {
		t.Fatalf("the get that found the connection idle: %v", err)
	}
	if retired() {
		// A call handed the connection keeps it (inHand); retired, it
		// could be retired again on every connection it goes to (a
		// hostile trial at MaxIdle 20 us: 4 times in a row, then failed).
		t.Error("the pool retired a connection it had handed to a call not yet put on it")
	}
	if r, err := held(wire.OpGet, &req, nil); err != nil || string(r.Payload) != "v" {
		t.Fatalf("the get on the connection handed out before it was retired: %q, %v", r.Payload, err)
	}
}
