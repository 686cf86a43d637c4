//go:build !unix

package client

import "net"

// readable cannot peek at a socket here: a connection the node closed is
// found when a request is written to it.
func readable(net.Conn) bool { return false }
