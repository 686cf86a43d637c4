package main

// A new user's second node on one host: the node commands the controller
// and `pocket cert issue` print had no --listen, so a second node started
// from them took the default 127.0.0.1:7100 and failed with 'bind:
// address already in use ... (a second node on one address?)', which
// named no flag.

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/internal/pki"
)

// TestPrintedNodeCommandsGiveListen: the standalone controller's banner
// and cert issue's node command carry --listen: on the controller's host
// (HOST for one listening on every address), or for another host on every
// address, advertising the certificate's --host (as the README's recipe).
func TestPrintedNodeCommandsGiveListen(t *testing.T) {
	// The default port, or the first free one after it while something
	// on this host holds it (firstFreePort).
	lo, all := strconv.Itoa(firstFreePort("127.0.0.1", 7100, 1)), strconv.Itoa(firstFreePort("", 7100, 1))
	for _, c := range []struct{ ctl, want string }{
		{"127.0.0.1:7400", "pocket node --controller 127.0.0.1:7400 --listen 127.0.0.1:" + lo + " --secret-file /s/secret --insecure"},
		{"10.0.0.5:7400", "--listen 10.0.0.5:7100"},
		{"0.0.0.0:7400", "--listen HOST:" + all},
		{"[::]:7400", "--listen HOST:" + strconv.Itoa(firstFreePort("::", 7100, 1))},
	} {
		out, _ := stdoutOf(t, func() int {
			(&ctlFlags{}).printServing(&ctlServe{insecure: true}, &ownSecret{path: "/s/secret"}, c.ctl, c.ctl, "")
			return 0
		})
		if !strings.Contains(out, c.want) || !strings.Contains(out, "each node on one host needs its own --listen port") {
			t.Errorf("controller on %s prints\n%s\nwant %q and the note on ports", c.ctl, out, c.want)
		}
	}
	// One of several controllers, advertising another address than the
	// one it listens on: the banner names both, and the node command asks
	// for every controller. Before, it said "serving on" the advertised
	// address alone and gave nodes that one controller (a new user's
	// trial: such a node was dead once that controller stopped).
	out, _ := stdoutOf(t, func() int {
		(&ctlFlags{ha: haFlags{etcd: "http://127.0.0.1:2379"}}).printServing(&ctlServe{insecure: true}, &ownSecret{path: "/s/secret"},
			"0.0.0.0:7000", "10.0.0.1:7000", "")
		return 0
	})
	for _, want := range []string{"serving on 0.0.0.0:7000 (advertised to clients and nodes as 10.0.0.1:7000)",
		"pocket node --controller 10.0.0.1:7000,OTHER:PORT,...", "list every controller"} {
		if !strings.Contains(out, want) {
			t.Errorf("one of several controllers prints\n%s\nwant %q", out, want)
		}
	}

	data := t.TempDir()
	if err := pki.Init(filepath.Join(data, tlsSubdir), []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	out, code := stdoutOf(t, func() int {
		return runCertIssue([]string{"--role", "node", "--host", "otherhost", "--out", filepath.Join(t.TempDir(), "certs"), "--data-dir", data})
	})
	if code != 0 || !strings.Contains(out, "pocket node --controller CONTROLLER --listen 0.0.0.0:7100 --advertise otherhost:7100 --tls-dir certs") ||
		!strings.Contains(out, "scp -r") || !strings.Contains(out, " otherhost:") {
		t.Errorf("cert issue --role node --host otherhost: exit %d, prints\n%s\nwant a node command with --listen 0.0.0.0:7100 --advertise otherhost:7100", code, out)
	}
}

// TestNodeOnATakenAddressNamesListen: a node whose --listen address
// another process listens on fails naming --listen and the address.
func TestNodeOnATakenAddressNamesListen(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	errOut, code := captured(t, &os.Stderr, func() int {
		return runNode([]string{"--listen", addr, "--dram", "1MiB", "--log-level", "error"})
	})
	if code == 0 || !strings.Contains(errOut, "address already in use") ||
		!strings.Contains(errOut, addr+" is taken: give this node another address with --listen HOST:PORT") {
		t.Fatalf("node on a taken address: exit %d, stderr %q; want the address taken and --listen named", code, errOut)
	}
}

// TestUpBannerNodeCommandGivesDRAM: up's banner's node command carries
// the DRAM size of up's nodes. On the old code it had none, and a node
// added from it took pocket node's default, 1GiB (a new user's trial).
func TestUpBannerNodeCommandGivesDRAM(t *testing.T) {
	for _, c := range []struct{ dram, want string }{{"256MiB", " --dram 256MiB"}, {"0", ""}, {"", ""}} {
		if got := upDRAMArg(c.dram); got != c.want {
			t.Errorf("up --dram %q: node command flag %q, want %q", c.dram, got, c.want)
		}
	}
}

// TestUpBannerNodeRecipeHasNVMe (a new user's trial): on a cluster whose
// nodes have an NVMe tier, the banner's recipe for a node added by hand
// asks for one, with a file of the user's; before, it left --nvme out.
func TestUpBannerNodeRecipeHasNVMe(t *testing.T) {
	if got := upNVMeArg("8GiB"); got != " --nvme FILE:8GiB" {
		t.Fatalf("upNVMeArg(8GiB) = %q", got)
	}
	if got := upNVMeArg(""); got != "" {
		t.Fatalf("upNVMeArg() = %q for nodes without NVMe", got)
	}
}

// TestControllerOnATakenAddressCreatesNothing: a controller whose
// --listen address is taken fails before it creates its secret, state
// file or CA in --data-dir. Before, a new user's trial found all three
// there after the failure.
func TestControllerOnATakenAddressCreatesNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	data := filepath.Join(t.TempDir(), "data")
	errOut, code := captured(t, &os.Stderr, func() int {
		return runController([]string{"--listen", ln.Addr().String(), "--data-dir", data, "--log-level", "error"})
	})
	if code == 0 || !strings.Contains(errOut, "address already in use") {
		t.Fatalf("controller on a taken address: exit %d, stderr %q", code, errOut)
	}
	if ents, err := os.ReadDir(data); err == nil && len(ents) > 0 {
		t.Fatalf("controller on a taken address left %d entries in --data-dir (first %s)", len(ents), ents[0].Name())
	}
}
