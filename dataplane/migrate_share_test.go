package dataplane

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/pocketstore/pocket/internal/placement"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/nvme"
)

// TestMigrateNotRefusedByReadShare: a drain moves a job's NVMe values
// with parallel reads of the node's own tier. Those reads are the node's,
// not the job's clients': they should not be refused busy by the job's
// share of the staging memory (chargeRead), failing the move. On the old
// code 15 of the 16 values failed to move ("read: busy") in one pass.
func TestMigrateNotRefusedByReadShare(t *testing.T) {
	tier := fileNVMe(t, nvme.Options{Size: 256 << 20, BufferPool: 16 << 20}, NVMeOptions{}) // share: 4 MiB
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", NVMe: tier, Net: netio.Config{Loops: 1}})
	vals := map[string][]byte{}
	for i := range 16 {
		k := fmt.Sprintf("k%02d", i)
		vals[k] = bytes.Repeat([]byte{byte(i)}, 3<<20)
		store(t, tier, "job-1", k, vals[k], 0)
	}
	owners := []placement.Node{{ID: "n1", Weight: 1}}
	f := &fakeOwners{vals: map[string]map[string][]byte{}, flags: map[string]uint16{}}
	st, err := n.Migrate(context.Background(), MigrateJob{Job: "job-1", Nodes: owners}, f, 4)
	t.Logf("stats %+v, err %v", st, err)
	if err != nil || st.Moved != int64(len(vals)) {
		t.Fatalf("moved %d of %d values: %v", st.Moved, len(vals), err)
	}
}
