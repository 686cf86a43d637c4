package dataplane_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/nvme"
	"github.com/pocketstore/pocket/wire"
)

// TestStreamNotCutWhenWorkersBusy: a streamed get whose reply has begun is
// not cut when a later chunk's read finds the device's ring full (queue
// depth 4) and the node's worker queue full (one worker, a queue of 4):
// the read waits for the device on a goroutine of its own (at most a
// stream's few reads, one stream per connection). A get refused before
// its reply begins answers busy, whole, which the SDKs retry. Before, the
// chunk's read failed busy and the connection was closed mid-reply: 4 of
// 4 streaming clients cut in 6 of 6 runs (a hostile trial saw it in every
// run with clients hanging up around the streams).
func TestStreamNotCutWhenWorkersBusy(t *testing.T) {
	if err := nvme.ProbeUring(); err != nil {
		t.Skip(err)
	}
	const size = 3<<20 + 777
	tier := newNVMe(t, 64<<20, nvme.Options{Engine: nvme.EngineUring, QueueDepth: 4}, dataplane.NVMeOptions{})
	n := hostileNode(t, tier, 1)
	defer n.Close()
	addr := n.Addr().String()
	val := pattern(5, size)
	putNVMe(t, dialNVMe(t, addr), "k", val)
	putNVMe(t, dialNVMe(t, addr), "small", pattern(6, 4096))
	var whole, busy, cut atomic.Int64
	var bad atomic.Value
	deadline := time.Now().Add(2 * time.Second)
	var wg sync.WaitGroup
	// Small gets from other clients keep the worker queue full.
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				return
			}
			defer nc.Close()
			for id := uint64(1); time.Now().Before(deadline); id++ {
				if _, _, err := getRaw(nc, id, "small"); err != nil {
					return
				}
			}
		}()
	}
	// Clients that send many gets and hang up, leaving their streams.
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			meta := wire.NewEncoder().Request(&wire.Request{Job: []byte("j"), Key: []byte("k")})
			for time.Now().Before(deadline) {
				nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					return
				}
				for id := uint64(1); id <= 32; id++ {
					var hdr [wire.HeaderLen]byte
					wire.PutHeader(hdr[:], &wire.Header{Op: wire.OpGet, Flags: wire.FlagTierNVMe, ID: id, MetaLen: uint32(len(meta))})
					nc.Write(append(hdr[:], meta...))
				}
				time.Sleep(time.Millisecond)
				nc.Close()
			}
		}()
	}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				bad.Store(err.Error())
				return
			}
			defer nc.Close()
			// Until the deadline, and past it (up to 10 s more, on a
			// slow machine) until some get has come back whole.
			for id := uint64(1); time.Now().Before(deadline) || whole.Load() == 0 && time.Now().Before(deadline.Add(10*time.Second)); id++ {
				code, body, err := getRaw(nc, id, "k")
				switch {
				case errors.Is(err, io.ErrUnexpectedEOF):
					cut.Add(1)
					return
				case err != nil:
					bad.Store(err.Error())
					return
				case code == wire.CodeBusy || code == wire.CodeNoSpace: // refused whole, before the reply began (no staging buffer)
					busy.Add(1)
				case code != wire.CodeOK || !bytes.Equal(body, val):
					bad.Store(fmt.Sprintf("reply %d: code %v, %d bytes, not the value (%q)", id, code, len(body), body[:min(len(body), 200)]))
					return
				default:
					whole.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if s, ok := bad.Load().(string); ok {
		t.Fatal(s)
	}
	if cut.Load() > 0 || whole.Load() == 0 {
		t.Fatalf("streamed gets, ring and workers full: %d whole, %d refused busy, %d cut mid-reply; want none cut", whole.Load(), busy.Load(), cut.Load())
	}
	t.Logf("%d whole, %d refused busy", whole.Load(), busy.Load())
}

// getRaw sends one get of key on nc and reads its reply: the code and
// the payload; a reply cut after its header is io.ErrUnexpectedEOF.
func getRaw(nc net.Conn, id uint64, key string) (wire.Code, []byte, error) {
	meta := wire.NewEncoder().Request(&wire.Request{Job: []byte("j"), Key: []byte(key)})
	var hdr [wire.HeaderLen]byte
	wire.PutHeader(hdr[:], &wire.Header{Op: wire.OpGet, Flags: wire.FlagTierNVMe, ID: id, MetaLen: uint32(len(meta))})
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write(append(hdr[:], meta...)); err != nil {
		return 0, nil, err
	}
	if _, err := io.ReadFull(nc, hdr[:]); err != nil {
		return 0, nil, err
	}
	lim := wire.DefaultLimits()
	h, err := wire.ParseHeader(hdr[:], &lim)
	if err != nil {
		return 0, nil, err
	}
	body := make([]byte, int(h.MetaLen)+int(h.PayloadLen))
	if _, err := io.ReadFull(nc, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return h.Code, nil, err
	}
	return h.Code, body[h.MetaLen:], nil
}
