package dataplane

// AwaitDrops returns once no drop n runs off the heartbeat's goroutine
// (bgdrop.go) is still running: for the package's external tests.
func AwaitDrops(n *Node) { n.bg.wait() }
