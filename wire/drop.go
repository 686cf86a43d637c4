package wire

import (
	"net"
	"strings"
)

// DropDeadSuffix ends the controller's failure entry for a dead node of a
// deregistered job's map: "ADDR: node dead" (controller/drop.go writes it,
// DropResult.Split reads it). A node lost from the map is in no map and
// gets no entry.
const DropDeadSuffix = ": node dead"

// Split sorts a deregistration's failures (Message, Failed entries joined
// by "; ") into the addresses of the map's dead nodes, whose copy of the
// job's data, persisted values included, went with them, and the other
// failures, one entry a node ("drop job J at ADDR: ..."): nodes that may
// still hold the job's data. Both are nil when no node failed. When the
// entries do not add up to Failed (an error text holding "; "), the whole
// Message is one other failure: a failure is never taken for a dead node
// by mistake. The Python client's DropResult.dead_nodes and
// other_failures split the same way.
func (r *DropResult) Split() (dead, others []string) {
	if r.Failed == 0 {
		return nil, nil
	}
	entries := strings.Split(r.Message, "; ")
	if len(entries) != int(r.Failed) {
		return nil, []string{r.Message}
	}
	for _, e := range entries {
		if a, ok := strings.CutSuffix(e, DropDeadSuffix); ok && isAddr(a) {
			dead = append(dead, a)
			continue
		}
		others = append(others, e)
	}
	return dead, others
}

// isAddr reports whether s is a host:port address and nothing more.
func isAddr(s string) bool {
	_, _, err := net.SplitHostPort(s)
	return err == nil && !strings.ContainsAny(s, " ;")
}
