package pocket

import (
	"encoding/base64"
	"encoding/json"
	"reflect"
	"testing"
)

// TestCredentialFormat checks that credentials keep the JSON field names
// they were first written with ({"ID", "Weight"} per node, from the
// placement node the map used to expose), both ways: a credential written
// before pocket.Node existed opens, and a new one writes those names.
func TestCredentialFormat(t *testing.T) {
	old := `{"job":"j-1","token":"AQI=","tier":1,"epoch":7,"nodes":[{"ID":"127.0.0.1:7001","Weight":2},{"ID":"127.0.0.1:7002","Weight":0.5}]}`
	s := NewStore(nil, Config{})
	defer s.Close()
	j, err := s.OpenCredential(base64.RawURLEncoding.EncodeToString([]byte(old)))
	if err != nil {
		t.Fatal(err)
	}
	want := []Node{{Addr: "127.0.0.1:7001", Weight: 2}, {Addr: "127.0.0.1:7002", Weight: 0.5}}
	m := j.Map()
	if !reflect.DeepEqual(m.Nodes, want) || m.Job != "j-1" || m.Epoch != 7 || m.Tier != TierDRAM || string(m.Token) != "\x01\x02" {
		t.Fatalf("old credential opened as %+v, want nodes %+v, job j-1, epoch 7, dram, token 0102", m, want)
	}
	raw, err := base64.RawURLEncoding.DecodeString(j.Credential())
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	var wantJSON map[string]any
	if err := json.Unmarshal([]byte(old), &wantJSON); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, wantJSON) {
		t.Fatalf("credential JSON %s, want %s", raw, old)
	}
}

// TestNodeWeightsPlace checks that Map.Nodes' weights reach placement: a
// node with weight 0 owns no key, and the others share them.
func TestNodeWeightsPlace(t *testing.T) {
	s := NewStore(nil, Config{})
	defer s.Close()
	j, err := s.newJob(Map{Job: "w", Nodes: []Node{{Addr: "a:1", Weight: 1}, {Addr: "b:1", Weight: 0}, {Addr: "c:1", Weight: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for i := range 1000 {
		seen[j.route([]byte{byte(i), byte(i >> 8)}, 0).addr]++
	}
	if seen["b:1"] != 0 || seen["a:1"] == 0 || seen["c:1"] == 0 || len(seen) != 2 {
		t.Fatalf("keys per node %v: want none on b:1 (weight 0) and some on a:1 and c:1", seen)
	}
}
