package pocket

import (
	"encoding/base64"
	"fmt"
	"reflect"
	"testing"
)

// TestCredentialKeepsNodeStates: a credential taken while a node of the
// map drains (or joins) says so, and opens with the same states, so its
// reads route as the live job's did: a value the drain moved is at its
// owner without the draining node. Before, the states were dropped, and
// after the drained node left such values read as unavailable through
// the credential (TestDrainMovesLiveJobsPersistedValues under -race, when
// the map Deregister took still named the node draining).
func TestCredentialKeepsNodeStates(t *testing.T) {
	old := `{"job":"j-1","token":"AQI=","tier":1,"epoch":7,"nodes":[{"ID":"127.0.0.1:7001","Weight":2},` +
		`{"ID":"127.0.0.1:7002","Weight":0.5,"draining":true},{"ID":"127.0.0.1:7003","Weight":1,"joining":true}]}`
	s := NewStore(nil, Config{})
	defer s.Close()
	j, err := s.OpenCredential(base64.RawURLEncoding.EncodeToString([]byte(old)))
	if err != nil {
		t.Fatal(err)
	}
	m := j.Map()
	if !reflect.DeepEqual(m.Draining, map[string]bool{"127.0.0.1:7002": true}) || !reflect.DeepEqual(m.Joining, map[string]bool{"127.0.0.1:7003": true}) {
		t.Fatalf("opened with draining %v, joining %v", m.Draining, m.Joining)
	}
	again, err := s.OpenCredential(j.Credential())
	if err != nil {
		t.Fatal(err)
	}
	if m2 := again.Map(); !reflect.DeepEqual(m2.Draining, m.Draining) || !reflect.DeepEqual(m2.Joining, m.Joining) || !reflect.DeepEqual(m2.Nodes, m.Nodes) {
		t.Fatalf("round trip: %+v, want %+v", m2, m)
	}
}

// TestCredentialKeepsLostNodes: a credential carries the map's lost nodes
// and each node's Since, so a key a lost node held answers ErrLost through
// it too, as through the job. Before, they were dropped, and with no
// controller to ask such keys read "not found" (a new user's trial).
func TestCredentialKeepsLostNodes(t *testing.T) {
	s := NewStore(nil, Config{})
	defer s.Close()
	j, err := s.newJob(Map{Job: "l-9", Epoch: 9, Nodes: []Node{{Addr: "a:1", Weight: 1}, {Addr: "b:1", Weight: 1, Since: 7}},
		Lost: []LostNode{{Addr: "c:1", Weight: 1, Epoch: 5}}})
	if err != nil {
		t.Fatal(err)
	}
	opened, err := s.OpenCredential(j.Credential())
	if err != nil {
		t.Fatal(err)
	}
	if m := opened.Map(); !reflect.DeepEqual(m.Lost, j.Map().Lost) || !reflect.DeepEqual(m.Nodes, j.Map().Nodes) {
		t.Fatalf("opened with nodes %+v lost %+v, want %+v %+v", m.Nodes, m.Lost, j.Map().Nodes, j.Map().Lost)
	}
	lost := 0
	for i := range 300 {
		key := []byte(fmt.Sprintf("k/%d", i))
		want, got := j.lostOwners(key, 0), opened.lostOwners(key, 0)
		if !reflect.DeepEqual(want, got) {
			t.Fatalf("%s: lost owners %v through the credential, %v through the job", key, got, want)
		}
		if len(want) > 0 {
			lost++
		}
	}
	if lost < 50 {
		t.Fatalf("%d of 300 keys on the lost node: the test proves nothing", lost)
	}
}
