package main

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/orchestrator"
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

// TestUpRefusesANodePortRangeInUse: up with --node-ports whose ports are
// taken fails naming the flag before it creates anything. Before, a new
// user's trial's up failed on its node ("no free port left in the nodes'
// port range", no flag named) after making the data directory's secret,
// state and CA.
func TestUpRefusesANodePortRangeInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := l.Addr().(*net.TCPAddr).Port
	o := upOptions{nodes: 1, nodePorts: strconv.Itoa(p), ports: orchestrator.PortRange{First: p, Last: p}}
	if err := o.freeNodePorts(); err == nil || !strings.Contains(err.Error(), "--node-ports "+strconv.Itoa(p)+": 0 of its ports are free") {
		t.Fatalf("freeNodePorts with its one port taken: %v", err)
	}
	o.ports.Last, o.nodePorts = p+1, fmt.Sprintf("%d-%d", p, p+1)
	if portInUse("127.0.0.1", p+1) {
		t.Skipf("port %d is in use too", p+1)
	}
	if err := o.freeNodePorts(); err != nil {
		t.Fatalf("freeNodePorts with a free port for its one node: %v", err)
	}
}
