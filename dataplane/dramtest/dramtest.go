// Package dramtest helps tests put a DRAM tier in a chosen state.
package dramtest

import (
	"strconv"

	"github.com/pocketstore/pocket/dataplane"
)

// Fragment fills d with 100-byte values of the job "other" until it takes
// no more, then deletes all but one in 64: a put of another size then finds
// no free page, and a node makes room by compacting on a goroutine,
// answering the put busy meanwhile (dataplane/dram_compact.go).
func Fragment(d *dataplane.DRAM) {
	k := 0
	for ; ; k++ {
		p, err := d.Create([]byte("other"), []byte("s"+strconv.Itoa(k)), 100, dataplane.Meta{})
		if err != nil {
			break
		}
		p.Commit()
	}
	for i := 0; i < k; i++ {
		if i%64 != 0 {
			d.Delete([]byte("other"), []byte("s"+strconv.Itoa(i)))
		}
	}
}
