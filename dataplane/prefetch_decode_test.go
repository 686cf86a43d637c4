package dataplane

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// TestPipelinedRequestsServedAsSent: OnData serves the frames prefetch
// decoded from prefetch's decode (predecoded), which is right only for the
// frame at that offset of that very read. Pipelined gets and puts of keys
// of many lengths, in batches of many sizes, have the kernel cut the reads
// at every kind of place, so a frame often sits at an offset where another
// read had a different one: every get must still answer its own key's
// value, every put store under its own key. Serving a frame from another
// entry's request, or looking a get up by another entry's hint, fails it.
func TestPipelinedRequestsServedAsSent(t *testing.T) {
	n := startNode(t, 64<<20, nil)
	c := dial(t, n, "j")
	rng := rand.New(rand.NewPCG(1, 2))
	const keys = 64
	key := func(i int) []byte { return fmt.Appendf(nil, "k%0*d", 1+i%23, i) }
	val := func(i, round int) []byte { return bytes.Repeat(fmt.Appendf(nil, "<%d.%d>", i, round), 1+i%7) }
	for i := range keys {
		req := wire.Request{Job: []byte("j"), Key: key(i)}
		if r := roundTrip(t, c, wire.OpPut, 0, &req, val(i, 0)); r.Code != wire.CodeOK {
			t.Fatalf("put %d: %v", i, r.Err())
		}
	}
	last := make([]int, keys) // the round of each key's value
	for round := 1; round <= 300; round++ {
		type sent struct {
			put bool
			i   int
		}
		var batch []sent
		for range 1 + rng.IntN(40) {
			s := sent{put: rng.IntN(4) == 0, i: rng.IntN(keys)}
			req := wire.Request{Job: []byte("j"), Key: key(s.i)}
			var err error
			if s.put {
				_, err = c.Send(wire.OpPut, 0, &req, val(s.i, round))
			} else {
				_, err = c.Send(wire.OpGet, 0, &req, nil)
			}
			if err != nil {
				t.Fatal(err)
			}
			batch = append(batch, s)
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		for _, s := range batch {
			r, err := c.Recv()
			if err != nil || r.Code != wire.CodeOK {
				t.Fatalf("round %d: %v %v", round, err, r.Err())
			}
			if s.put {
				last[s.i] = round
				continue
			}
			if want := val(s.i, last[s.i]); !bytes.Equal(r.Payload, want) {
				t.Fatalf("round %d: get of %s answered %q, want %q", round, key(s.i), r.Payload, want)
			}
		}
	}
}

// TestHintOfAJobEnteredAgain: a get served from a prefetch's hint looks
// its key up in the job index the prefetch found. When the job was
// dropped and entered again in between (its index new), the hint's index
// is empty: the get must find the value the new index holds, not answer
// "not found". Without the check of the tier's job map it did.
func TestHintOfAJobEnteredAgain(t *testing.T) {
	d, err := NewDRAM(64<<20, DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	put := func(v string) {
		t.Helper()
		p, err := d.Create([]byte("j"), []byte("k"), int64(len(v)), Meta{})
		if err != nil {
			t.Fatal(err)
		}
		copy(p.Buffers()[0], v)
		if _, err := p.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	put("old")
	var b prefetchBatch
	b.n, b.req[0] = 1, wire.Request{Job: []byte("j"), Key: []byte("k")}
	d.prefetch(&b)
	if b.dj[0] == nil {
		t.Fatal("prefetch found no job index")
	}
	d.DropJob([]byte("j"), false)
	put("new")
	v, err := d.openIn(b.dj[0], b.hash[0], []byte("j"), []byte("k"))
	if err != nil {
		t.Fatalf("get by the hint of a job entered again: %v", err)
	}
	defer v.Release()
	if got := string(bytes.Join(v.Segments(), nil)); got != "new" {
		t.Fatalf("got %q, want %q", got, "new")
	}
}

// TestShortReadAfterABatchIsItsOwn: a read too short for prefetch (a lone
// ping's 24 bytes) after a read of pipelined gets on the same connection
// is served as itself. The batch of the gets' read is forgotten when its
// OnData returns; kept, the ping's frame at offset 0 of the same buffer
// was taken for the first get and answered with its value.
func TestShortReadAfterABatchIsItsOwn(t *testing.T) {
	n := startNode(t, 64<<20, nil)
	c := dial(t, n, "j")
	// A frame taken for a longer one leaves the node waiting for bytes
	// that never come: fail then, not at the test binary's timeout.
	if err := c.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	req := wire.Request{Job: []byte("j"), Key: []byte("k")}
	if r := roundTrip(t, c, wire.OpPut, 0, &req, []byte("value")); r.Code != wire.CodeOK {
		t.Fatalf("put: %v", r.Err())
	}
	for round := range 50 {
		for range 8 {
			if _, err := c.Send(wire.OpGet, 0, &req, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		for range 8 {
			if r, err := c.Recv(); err != nil || r.Code != wire.CodeOK {
				t.Fatalf("round %d: get: %v %v", round, err, r.Err())
			}
		}
		r := roundTrip(t, c, wire.OpPing, 0, &wire.Request{}, nil)
		if r.Code != wire.CodeOK || r.Op != wire.OpPing.Reply() || len(r.Payload) != 0 {
			t.Fatalf("round %d: ping answered %v %v with %d bytes", round, r.Op, r.Code, len(r.Payload))
		}
	}
}
