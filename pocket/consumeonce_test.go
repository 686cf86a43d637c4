package pocket

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestDeleteAfterReadConsumesOnce races readers that delete-after-read the
// same value, through every read path, for a one-record value and a chunked
// object: exactly one reader may hand the value out, the others answer "not
// found" (no writer replaces the value: never a conflict). Before, a
// chunked object (and, through GetFile, GetTo and GetBuffer, any value) was
// read whole by every racer, and each deleted it by version and returned
// it; and a streamed loser whose chunks went answered a conflict.
func TestDeleteAfterReadConsumesOnce(t *testing.T) {
	addrs, _ := cluster(t, 2, 128<<20)
	s := NewStore(nil, Config{ChunkSize: 64 << 10})
	t.Cleanup(func() { s.Close() })
	j, err := s.OpenStatic("job-1", addrs...)
	if err != nil {
		t.Fatal(err)
	}
	h := &Handle{s: s, jobs: map[string]*Job{"job-1": j}}
	ctx := context.Background()
	dir := t.TempDir()
	reads := map[string]func(key string, n, i int) ([]byte, error){
		"Get": func(key string, _, _ int) ([]byte, error) { return j.Get(ctx, key, DeleteAfterRead()) },
		"GetFile": func(key string, _, i int) ([]byte, error) {
			dst := filepath.Join(dir, fmt.Sprintf("%s-%d", key, i))
			if err := j.GetFile(ctx, key, dst, DeleteAfterRead()); err != nil {
				if _, serr := os.Stat(dst); serr == nil {
					return nil, fmt.Errorf("a lost race left %s in place: %w", dst, err)
				}
				return nil, err
			}
			return os.ReadFile(dst)
		},
		"GetTo": func(key string, _, _ int) ([]byte, error) {
			var b bytes.Buffer
			_, err := j.GetTo(ctx, key, &b, DeleteAfterRead())
			return b.Bytes(), err
		},
		"GetBuffer": func(key string, n, _ int) ([]byte, error) {
			buf := make([]byte, n)
			if h.GetBuffer(key, buf, n, "job-1", true) != 0 {
				return nil, wire.ErrNotFound // the compat layer answers a status only
			}
			return buf, nil
		},
	}
	const racers = 6
	for name, read := range reads {
		for _, n := range []int{1000, 600 << 10} {
			for round := range 4 {
				key := fmt.Sprintf("%s-%d-%d", name, n, round)
				val := randBytes(n, uint64(round))
				if err := j.Put(ctx, key, val); err != nil {
					t.Fatal(err)
				}
				var mu sync.Mutex
				won := 0
				var wg sync.WaitGroup
				for i := range racers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						got, err := read(key, n, i)
						mu.Lock()
						defer mu.Unlock()
						switch {
						case err == nil && bytes.Equal(got, val):
							won++
						case err == nil:
							t.Errorf("%s: a reader got %d wrong bytes", key, len(got))
						case !errors.Is(err, wire.ErrNotFound):
							t.Errorf("%s: a losing reader answered %v, want not found", key, err)
						}
					}()
				}
				wg.Wait()
				if won != 1 {
					t.Errorf("%s (%d bytes): %d readers got the value, want exactly 1", key, n, won)
				}
				if ok, err := j.Exists(ctx, key); ok || err != nil {
					t.Errorf("%s left after delete-after-read: %v", key, err)
				}
			}
		}
	}
}
