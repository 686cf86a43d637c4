package main

import (
	"strings"
	"testing"
)

// TestUpNodesWithAutoscale: pocket up --autoscale --nodes N starts N nodes
// (as --min-nodes N); --nodes and --min-nodes that disagree, or a floor
// over --max-nodes, are refused. Before, --nodes was silently replaced by
// --min-nodes' default of 1.
func TestUpNodesWithAutoscale(t *testing.T) {
	for _, tc := range []struct {
		args    string
		min     int
		wantErr string
	}{
		{"--autoscale --nodes 3", 3, ""},
		{"--autoscale --min-nodes 2", 2, ""},
		{"--autoscale", 1, ""},
		{"--autoscale --nodes 3 --min-nodes 3", 3, ""},
		{"--autoscale --nodes 3 --min-nodes 2", 0, "give one of them"},
		{"--autoscale --nodes 9", 0, "more than --max-nodes 8"},
	} {
		fs := newFlagSet("up")
		var o upOptions
		fs.IntVar(&o.nodes, "nodes", 3, "")
		bindScale(fs, &o)
		if err := fs.Parse(strings.Fields(tc.args)); err != nil {
			t.Fatal(err)
		}
		err := nodesAsMin(fs, &o)
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: %v, want an error saying %q", tc.args, err, tc.wantErr)
		case tc.wantErr == "" && (err != nil || o.scale.MinNodes != tc.min):
			t.Errorf("%s: min nodes %d, %v; want %d", tc.args, o.scale.MinNodes, err, tc.min)
		}
	}
}
