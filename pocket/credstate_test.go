package pocket

import (
	"encoding/base64"
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
