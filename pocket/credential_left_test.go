package pocket

import (
	"context"
	"encoding/base64"
	"encoding/json"
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
