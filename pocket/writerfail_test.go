package pocket

import (
	"context"
	"errors"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestWriterStopsAtItsFirstFailure (new user's trial, 2026-12-08): once a
// chunk a Writer sent has failed, or its context has ended, Write returns
// the error, and so does every later Write and Close; nothing becomes
// visible. Before, Write took bytes for ever and only Close reported the
// failure: `pocket put JOB KEY /dev/zero` ran for more than 10 minutes
// past a full tier and through SIGINT and SIGTERM.
func TestWriterStopsAtItsFirstFailure(t *testing.T) {
	addrs, _ := cluster(t, 1, 8<<20)
	j := staticJob(t, Config{ChunkSize: 256 << 10}, addrs)
	piece := make([]byte, 1<<20)
	// writeUntil writes 1 MiB pieces until Write fails, at most limit
	// bytes, and returns how many it wrote and the error.
	writeUntil := func(w *Writer, limit int64) (int64, error) {
		var n int64
		for n < limit {
			k, err := w.Write(piece)
			n += int64(k)
			if err != nil {
				return n, err
			}
		}
		return n, nil
	}

	// A full tier: 8 MiB of room.
	ctx := context.Background()
	w, err := j.NewWriter(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	n, err := writeUntil(w, 1<<30)
	if !errors.Is(err, wire.ErrNoSpace) {
		t.Fatalf("writes into an 8 MiB tier: %d bytes taken, %v; want a no-space error within them", n, err)
	}
	if _, again := w.Write(piece); !errors.Is(again, wire.ErrNoSpace) {
		t.Fatalf("a Write after the failure: %v; want the same error", again)
	}
	if cerr := w.Close(); !errors.Is(cerr, wire.ErrNoSpace) {
		t.Fatalf("Close after the failure: %v; want the same error", cerr)
	}
	if _, err := j.Get(ctx, "big"); !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("get of the failed value: %v; want not found", err)
	}

	// A context cancelled after the writer began.
	cctx, cancel := context.WithCancel(ctx)
	w, err = j.NewWriter(cctx, "cut")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(piece[:1<<10]); err != nil {
		t.Fatal(err)
	}
	cancel()
	if n, err := writeUntil(w, 2<<30); !errors.Is(err, context.Canceled) {
		t.Fatalf("writes after the writer's context was cancelled: %d bytes taken, %v; want context.Canceled", n, err)
	}
}
