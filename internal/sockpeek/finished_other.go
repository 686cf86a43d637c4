//go:build !linux

package sockpeek

import "net"

// Finished cannot ask the kernel here: it reports false.
func Finished(net.Conn) bool { return false }

// Reset cannot ask the kernel here: it reports false.
func Reset(net.Conn) bool { return false }
