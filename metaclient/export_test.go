package metaclient

import "github.com/pocketstore/pocket/wire"

// SetAfterWrite sets afterWrite for a test and returns a function that
// clears it.
func SetAfterWrite(f func(wire.Op)) (undo func()) {
	afterWrite = f
	return func() { afterWrite = nil }
}
