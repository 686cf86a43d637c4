package pocket_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/pocket"
	"github.com/pocketstore/pocket/wire"
)

// TestTooLargeNamesTheRecord: a node refusing records over 64 KiB (as an
// NVMe tier does past its staging memory) names only its own limit. The
// put's error says which record it refused and its size, and that
// ChunkSize sets it, for a value put whole, one put in chunks and one
// written through a Writer; the code is still ErrTooLarge. Before, the
// error named only the node's limit, and a value stored in chunks read as
// refused whole (a new user's trial).
func TestTooLargeNamesTheRecord(t *testing.T) {
	const limit = 64 << 10
	addr := hostileNode(t, func(h wire.Header, req *wire.Request) nodeAnswer {
		if h.Op == wire.OpPut && h.PayloadLen > limit {
			return nodeAnswer{code: wire.CodeTooLarge, resp: wire.Response{Message: "value larger than the NVMe tier's staging memory of 65536 bytes (--nvme-staging)"}}
		}
		return nodeAnswer{}
	})
	s := pocket.NewStore(nil, pocket.Config{ChunkSize: 256 << 10})
	t.Cleanup(func() { s.Close() })
	j, err := s.OpenStatic("j1", addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	check := func(what string, err error, want string) {
		t.Helper()
		if !errors.Is(err, wire.ErrTooLarge) {
			t.Fatalf("%s: %v, want ErrTooLarge", what, err)
		}
		for _, w := range []string{want, "chunk size, 262144 bytes", "staging memory of 65536"} {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("%s: %q does not say %q", what, err, w)
			}
		}
	}
	check("whole", j.Put(ctx, "whole", make([]byte, 100<<10)), "the value whole, 102400 bytes")
	check("chunked", j.Put(ctx, "chunked", make([]byte, 1<<20)), "a chunk, 262144 bytes")
	w, err := j.NewWriter(ctx, "streamed")
	if err != nil {
		t.Fatal(err)
	}
	// A chunk's refusal reaches Write once it has come back (39eee65),
	// else Close: either names the record.
	_, err = w.Write(make([]byte, 600<<10))
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	check("writer", err, "a chunk, 262144 bytes")
	if err := j.Put(ctx, "small", make([]byte, 1000)); err != nil {
		t.Fatalf("a record under the limit: %v", err)
	}
}
