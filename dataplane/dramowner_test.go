package dataplane

import "testing"

// TestReadValuesCountTillReleased (hostile re-check, 2026-12-08): a value
// overwritten or deleted while a read holds it open stays in its job's and
// its owner's count until the read releases it, as it stays in the
// arena. Before, it left the count at once: a job overwrote a 4 MiB value
// 63 times, each version held by a get on a connection that read nothing,
// and filled a 256 MiB node while its quota counted 4 MiB.
func TestReadValuesCountTillReleased(t *testing.T) {
	d, err := NewDRAM(64<<20, DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.setOwners(func([]byte) []byte { return []byte("o tenant") })
	job := []byte("j-1")
	put := func(key string, n int) {
		t.Helper()
		p, err := d.Create(job, []byte(key), int64(n), Meta{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	put("k", 1<<20)
	one := d.JobUsage(job)
	owner := d.ownerUsage(job)
	v, err := d.Open(job, []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	put("k", 1<<20) // the first version stays open
	if got := d.JobUsage(job); got != 2*one {
		t.Fatalf("job's count with an overwritten value still read: %d; want %d (both versions)", got, 2*one)
	}
	if got := d.ownerUsage(job); got != owner+one {
		t.Fatalf("owner's count with an overwritten value still read: %d; want %d", got, owner+one)
	}
	v.Release()
	if got := d.JobUsage(job); got != one {
		t.Fatalf("job's count once the read released it: %d; want %d", got, one)
	}
	// A delete under a read, the job left with no key: the owner still
	// counts the value until it is released.
	v, err = d.Open(job, []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Delete(job, []byte("k")); err != nil {
		t.Fatal(err)
	}
	if got := d.ownerUsage([]byte("j-2")); got < one {
		t.Fatalf("owner's count, from another of its jobs, with a deleted value still read: %d; want at least %d", got, one)
	}
	v.Release()
	if got := d.ownerUsage([]byte("j-2")); got > jobEntryCost {
		t.Fatalf("owner's count once the deleted value was released: %d; want at most a job's cost, %d", got, jobEntryCost)
	}
}
