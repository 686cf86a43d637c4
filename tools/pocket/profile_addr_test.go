package main

import (
	"bufio"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/internal/nettest"
	"github.com/pocketstore/pocket/internal/pki"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// TestJobProfileNamedControllerDown: `pocket job profile NAME
// --controller ADDR` asks the controller at ADDR. When ADDR refuses the
// connection (that controller is down or restarting, here or on another
// host), the command must not answer from the default data directory
// ($POCKET_DATA_DIR or ~/.pocket): that directory holds the state of
// whatever cluster was last run here, not necessarily ADDR's, and its
// profile was printed as if it were ADDR's (exit 0, the local cluster's
// runs, with a warning that does not even name the directory read).
// Reading a stopped controller's state is what --data-dir asks for.
func TestJobProfileNamedControllerDown(t *testing.T) {
	local := t.TempDir() // this machine's own cluster, stopped
	if err := pki.Init(filepath.Join(local, tlsSubdir), []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	st, err := state.OpenBolt(filepath.Join(local, stateSubdir))
	if err != nil {
		t.Fatal(err)
	}
	ended := time.UnixMilli(1_700_000_000_123).UTC()
	p := state.Profile{Name: "small", Updated: ended, Runs: []state.Run{
		{Job: "small-local-7", Ended: ended, Duration: time.Minute, PeakMbps: 26, PeakBytes: 3 << 20, AllocMbps: 600}}}
	if err := st.Apply(&state.Batch{PutProfiles: []state.Profile{p}}); err != nil {
		st.Close()
		t.Fatal(err)
	}
	st.Close()
	t.Setenv(envDataDir, local)
	t.Setenv(envTLSDir, "")
	t.Setenv(metaclient.EnvController, "")

	named := nettest.RefusedAddr(t) // the controller asked for: down

	out, errOut, code := outputOf(t, func() int { return runJobProfile([]string{"small", "--controller", named}) })
	if code == 0 || strings.Contains(out, "small-local-7") {
		t.Fatalf("job profile --controller %s (refusing): exit %d, printed the default data directory's profile:\n%s%s", named, code, out, errOut)
	}
	if !strings.Contains(errOut, named) {
		t.Fatalf("the error does not name the controller asked (%s): %s", named, errOut)
	}
}

// TestJobProfileOlderController: a controller that does not know the
// job-profile call (older than the CLI) is named as such, with what to do,
// not reported as "does not serve op(0x..)".
func TestJobProfileOlderController(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				lim := wire.ControlLimits()
				for {
					h, _, err := wire.ReadControlFrame(br, &lim, nil)
					if err != nil {
						return
					}
					e := wire.Errorf(wire.CodeUnknownOp, "controller does not serve %v", uint8(h.Op))
					if _, err := conn.Write(wire.AppendControlFrame(nil, h.Op.Reply(), h.ID, wire.CodeUnknownOp, wire.NewEncoder().ErrorResponse(e))); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Setenv(envTLSDir, "")
	_, errOut, code := outputOf(t, func() int {
		return runJobProfile([]string{"small", "--insecure", "--controller", ln.Addr().String()})
	})
	if code != 1 || !strings.Contains(errOut, "older than this pocket") || !strings.Contains(errOut, "--data-dir") {
		t.Fatalf("an older controller: exit %d: %s", code, errOut)
	}
}
