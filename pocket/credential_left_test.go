package pocket

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

// finalMapCtl is a controller that answers every map question with an
// ended job's final map.
type finalMapCtl struct {
	Controller
	final Map
}

func (c finalMapCtl) GetMap(context.Context, string, []byte) (Map, error) { return c.final, nil }
func (c finalMapCtl) Close() error                                        { return nil }

// TestCredentialTakesTheFinalMapANodeLeft: a credential taken while a
// node of the job drained names it draining; the job ended, and the node
// left with its values moved, so the controller's final map of the same
// epoch no longer names it (package controller, endedRetireLocked). The
// credential opens on the controller's map: a read of a missing key asks
// the live owner alone, not a node that is gone. On the old code it kept
// its own map, and such reads went to the departed node.
func TestCredentialTakesTheFinalMapANodeLeft(t *testing.T) {
	a, b := "127.0.0.1:1", "127.0.0.1:2"
	taken := Map{Job: "j-1", Token: []byte("tok"), Epoch: 3, Nodes: []Node{{Addr: a, Weight: 1}, {Addr: b, Weight: 1}},
		Draining: map[string]bool{b: true}}
	js, err := json.Marshal(credential{Job: taken.Job, Token: taken.Token, Epoch: taken.Epoch, Nodes: credNodes(&taken)})
	if err != nil {
		t.Fatal(err)
	}
	final := Map{Job: "j-1", Token: []byte("tok"), Epoch: 3, Nodes: []Node{{Addr: a, Weight: 1}}, Ended: true}
	s := NewStore(finalMapCtl{final: final}, Config{})
	t.Cleanup(func() { s.Close() })
	j, err := s.OpenCredential(base64.RawURLEncoding.EncodeToString(js))
	if err != nil {
		t.Fatal(err)
	}
	if m := j.Map(); len(m.Nodes) != 1 || m.Nodes[0].Addr != a || m.Draining[b] || !j.Ended() {
		t.Fatalf("credential opened on %+v (ended %v); want the final map without %s", m, j.Ended(), b)
	}
}

// TestCredentialThatDoesNotDecodeSaysSo: a string that is no credential
// is named as not one, with where a credential comes from, and none of it
// is shown (it may be a secret cut short). Before, the error was the JSON
// decoder's alone: "invalid character '\u0081' looking for beginning of
// value", or "unexpected end of JSON input" for an empty string (a new
// user's trial).
func TestCredentialThatDoesNotDecodeSaysSo(t *testing.T) {
	s := NewStore(nil, Config{})
	t.Cleanup(func() { s.Close() })
	for _, cred := range []string{"", "gYGBgYGB", "not base64 at all!"} {
		_, err := s.OpenCredential(cred)
		if err == nil || !strings.Contains(err.Error(), "is not a job credential (the string Job.Credential and pocket job credential print)") ||
			cred != "" && strings.Contains(err.Error(), cred) {
			t.Errorf("OpenCredential(%q): %v", cred, err)
		}
	}
}
