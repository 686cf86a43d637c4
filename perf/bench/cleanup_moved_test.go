package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
)

// TestCleanupCountsKeysNotAtNode: a run with --addr NODE whose job's map
// changed during it finds some of the keys it wrote gone from the node
// (moved to another by the controller). A new user's trial: 114 of 256
// keys moved, and the report said "deleted the 256 key(s) the run wrote"
// while `pocket ls` listed the 114, because a delete's "not found" counted
// as deleted. The cleanup must count them apart and say where they went.
func TestCleanupCountsKeysNotAtNode(t *testing.T) {
	addr := startNode(t)
	opts := client.ConnOptions{Job: []byte("bench")}
	dial := PocketDialer(addr, opts, 64)
	keys := NewKeyspace("b64-", 10)
	c, err := dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	written := newKeySet(keys.Len())
	for i := range keys.Len() {
		c.SendPut(keys.Key(i), make([]byte, 64))
		written.add(i)
	}
	// Four of them "moved": gone from this node.
	for i := range 4 {
		c.(Deleter).SendDelete(keys.Key(i))
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	for range keys.Len() + 4 {
		if err := c.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	st := &Stats{Config: Config{Op: Get, Conns: 2, StallLimit: 5 * time.Second, Prefix: "b64-"}}
	st.cleanup(context.Background(), dial, keys, written)
	if st.Deleted != 6 {
		t.Errorf("cleanup deleted %d, want the 6 the node held", st.Deleted)
	}
	note := st.CleanupNote()
	for _, want := range []string{"deleted 6 of the 10", "4 not found at the node", "--controller"} {
		if !strings.Contains(note, want) {
			t.Errorf("cleanup note %q does not say %q", note, want)
		}
	}
	r := NewResult("pocket://"+addr, "", st)
	if r.Cleanup != CleanupIncomplete || !strings.Contains(r.keysNote(), "4 not found at the node") {
		t.Errorf("report: cleanup %q, keys %q; want incomplete, naming the 4 not found", r.Cleanup, r.keysNote())
	}
}
