package pocket

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pocketstore/pocket/internal/placement"
)

// TestRetiredOldChunkedCopyIsDropped (a review): an ended job whose key
// has an old owner holding an older chunked copy: taking (or deleting)
// the key must not leave the older copy's chunks. Before, they stayed
// (4 records, 49,632 bytes) until the job's sweep.
func TestRetiredOldChunkedCopyIsDropped(t *testing.T) {
	for _, take := range []bool{true, false} {
		t.Run(fmt.Sprintf("take=%v", take), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			const cs = 16 << 10
			valA, valB := randBytes(3*cs+100, 1), []byte("value B, at the live owner")
			ns := dropMoveCluster(t, 2)
			a, b := ns[0], ns[1]
			whole := placement.NewSet(placementNodes([]Node{{Addr: a.addr, Weight: 1}, {Addr: b.addr, Weight: 1}}))
			key := ""
			for i := 0; key == ""; i++ {
				if k := fmt.Sprintf("obj-%d", i); whole.Node(whole.Pick([]byte(k), 0)).ID == a.addr {
					key = k
				}
			}
			if err := staticJob(t, Config{ChunkSize: cs}, []string{a.addr}).Put(ctx, key, valA); err != nil {
				t.Fatal(err)
			}
			if err := staticJob(t, Config{ChunkSize: cs}, []string{b.addr}).Put(ctx, key, valB); err != nil {
				t.Fatal(err)
			}
			t.Logf("a holds %d values before", a.faulty.Usage().Values)
			j := staticJob(t, Config{ChunkSize: cs}, []string{a.addr, b.addr})
			m := j.Map()
			m.Draining = map[string]bool{a.addr: true}
			m.Ended = true
			m.Epoch++
			j.setMap(m)
			j.retired.Store(true)
			if take {
				got, err := j.Get(ctx, key, DeleteAfterRead())
				if err != nil || !bytes.Equal(got, valB) {
					t.Fatalf("take: %q %v", got, err)
				}
			} else if err := j.Delete(ctx, key); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
			if u := a.faulty.Usage(); u.Values != 0 {
				t.Errorf("old owner still holds %d values (%d bytes): the older copy's chunks were never dropped", u.Values, u.Used)
			}
		})
	}
}
