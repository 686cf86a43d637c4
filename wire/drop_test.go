package wire

import (
	"slices"
	"testing"
)

// TestDropResultSplit: a deregistration's failures split into dead nodes
// and the others, never taking another failure for a dead node.
func TestDropResultSplit(t *testing.T) {
	for _, c := range []struct {
		name         string
		res          DropResult
		dead, others []string
	}{
		{"none", DropResult{Nodes: 2}, nil, nil},
		{"dead", DropResult{Failed: 1, Message: "127.0.0.1:7001: node dead"}, []string{"127.0.0.1:7001"}, nil},
		{"dead and refused", DropResult{Failed: 2, Message: "[::1]:7001: node dead; drop job j at 127.0.0.1:7002: connection refused"},
			[]string{"[::1]:7001"}, []string{"drop job j at 127.0.0.1:7002: connection refused"}},
		{"an error that ends like a dead node", DropResult{Failed: 1, Message: "drop job j at 127.0.0.1:7002: node dead"},
			nil, []string{"drop job j at 127.0.0.1:7002: node dead"}},
		{"entries that do not add up", DropResult{Failed: 1, Message: "x; 127.0.0.1:7001: node dead"},
			nil, []string{"x; 127.0.0.1:7001: node dead"}},
		{"no port", DropResult{Failed: 1, Message: "host: node dead"}, nil, []string{"host: node dead"}},
	} {
		dead, others := c.res.Split()
		if !slices.Equal(dead, c.dead) || !slices.Equal(others, c.others) {
			t.Errorf("%s: dead %q, others %q; want %q, %q", c.name, dead, others, c.dead, c.others)
		}
	}
}
