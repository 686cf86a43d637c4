package main

import (
	"net"
	"strconv"
	"strings"
	"testing"
)

// TestPrintedNodePortIsFree: the port a printed node command suggests is
// passed over while something on this host binds it (a node of an
// earlier run, or one added by hand: a new user's trial was shown the
// port its own node held), and the note names the one printed.
func TestPrintedNodePortIsFree(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	held := l.Addr().(*net.TCPAddr).Port
	if p := firstFreePort("127.0.0.1", held, 1); p == held {
		t.Fatalf("firstFreePort from held port %d gave it", held)
	}
	if p := firstFreePort("127.0.0.1", held, -1); p != held-1 && p >= held {
		t.Fatalf("firstFreePort down from held port %d gave %d", held, p)
	}
	if p := firstFreePort("HOST", held, 1); p != held {
		t.Fatalf("firstFreePort of a host to fill in moved the port: %d", p)
	}
	listen := " --listen " + net.JoinHostPort("127.0.0.1", strconv.Itoa(held+1))
	if note := nodePortNoteAt(listen); !strings.Contains(note, strconv.Itoa(held+1)+" (7100 is in use here)") {
		t.Fatalf("note for %q: %q", listen, note)
	}
	if note := nodePortNoteAt(" --listen 127.0.0.1:7100"); note != nodePortNote {
		t.Fatalf("note for the default port: %q", note)
	}
}
