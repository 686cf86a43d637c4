package dataplane

// AwaitDrops returns once no drop n runs off the heartbeat's goroutine
// (bgdrop.go) is still running: for the package's external tests.
func AwaitDrops(n *Node) { n.bg.wait() }

// quotaPending is the bytes of the owner key's puts under way under a
// byte quota (quotahold.go).
func (n *Node) quotaPending(key string) int64 {
	n.quota.mu.Lock()
	defer n.quota.mu.Unlock()
	if s := n.quota.m[key]; s != nil {
		return s.pending
	}
	return 0
}

// SetDRAMOwners has d count its jobs' bytes per owner, as a node's DRAM
// tier does (dramowner.go), for benchmarks outside the package.
func SetDRAMOwners(d *DRAM, ownerOf func(job []byte) []byte) { d.setOwners(ownerOf) }
