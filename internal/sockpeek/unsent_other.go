//go:build !linux

package sockpeek

import "net"

// Unsent cannot ask the socket here.
func Unsent(net.Conn) (int, bool) { return 0, false }
