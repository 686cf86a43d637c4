package pocket

// SetListBound sets the bound of one node's listing (MaxListBytes) for a
// test, and returns the undo.
func SetListBound(n int64) (undo func()) {
	old := listBound
	listBound = n
	return func() { listBound = old }
}
