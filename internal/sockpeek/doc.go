// Package sockpeek looks at a connection's socket without reading from it
// or waiting: whether bytes wait to be read, the peer has closed its end,
// or nothing has happened. The client uses it to find idle connections a
// node closed, the controller to find a registering client that left.
package sockpeek

// State is what a Peek found.
type State uint8

const (
	// Unknown: the connection has no descriptor to look at (a *tls.Conn,
	// a pipe), or the platform cannot peek.
	Unknown State = iota
	// Quiet: nothing waits to be read and the peer has not closed.
	Quiet
	// Data: bytes wait to be read.
	Data
	// Closed: the peer closed its end (end of file), the connection
	// failed, or its descriptor is closed.
	Closed
)
