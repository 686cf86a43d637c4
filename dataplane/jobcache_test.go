package dataplane

import (
	"testing"
	"time"
)

// TestEntryCacheFollowsTheTable: a connection's cached lookup (lookupVia)
// answers what lookup answers after every change of the table: a job
// entered after a miss was cached, a job revoked (its entry replaced), and
// another job's name. With the shard's map not compared, the first miss
// stuck and a revoked job's old entry was served.
func TestEntryCacheFollowsTheTable(t *testing.T) {
	var j jobTable
	j.init()
	var c entryCache
	check := func(job, when string) {
		t.Helper()
		if got, want := j.lookupVia(&c, []byte(job)), j.lookup([]byte(job)); got != want {
			t.Fatalf("%s: cached lookup of %s = %p, the table's %p", when, job, got, want)
		}
	}
	check("a", "before a is known")
	j.revokeOrder("a", time.Now(), false) // enters a (revoked) in a new map
	if j.lookup([]byte("a")) == nil {
		t.Fatal("revokeOrder entered no entry")
	}
	check("a", "after a was entered")
	check("b", "another job")
	check("a", "a again")
	ed := j.edit()
	ed.del("a")
	ed.commit()
	check("a", "after a was removed")
}
