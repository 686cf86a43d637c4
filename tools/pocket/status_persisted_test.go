package main

import (
	"strings"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestStatusNamesHeldDrainAndPersistedValues: a draining node that moved
// its data but keeps persisted values of ended jobs is held, not leaving,
// and the plain status says so with the jobs, bytes and what to do; a
// node that keeps such values gets a line with their count and bytes.
// Before, the held drain read "all data moved; leaving" and the persisted
// values showed nowhere in the plain status (a new user's trial).
func TestStatusNamesHeldDrainAndPersistedValues(t *testing.T) {
	persisted := []wire.Metric{{Name: wire.MetricPersistedJobs, Value: 2}, {Name: wire.MetricPersistedBytes, Value: 5 << 20}}
	st := &wire.ClusterStatus{NodeCount: 4, Nodes: []wire.NodeStatus{
		{Addr: "127.0.0.1:7001", State: wire.NodeDraining, Metrics: append([]wire.Metric{{Name: wire.MetricDrainDone, Value: 1}}, persisted...)},
		{Addr: "127.0.0.1:7002", State: wire.NodeActive, Metrics: persisted},
		{Addr: "127.0.0.1:7003", State: wire.NodeDraining, Metrics: []wire.Metric{{Name: wire.MetricDrainDone, Value: 1}}},
		{Addr: "127.0.0.1:7004", State: wire.NodeActive}}}
	out, _ := stdoutOf(t, func() int { printStatus(statusView(st)); return 0 })
	for _, want := range []string{
		"node 127.0.0.1:7001 draining: held: all other data moved, but it keeps persist-after-job values of 2 ended job(s), 5MiB",
		"pocket node drain 127.0.0.1:7001 --discard-persisted",
		"node 127.0.0.1:7002 keeps persist-after-job values of 2 ended job(s), 5MiB",
		"node 127.0.0.1:7003 draining: all data moved; leaving",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plain status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "127.0.0.1:7001 draining: all data moved; leaving") {
		t.Errorf("a held drain reads as leaving:\n%s", out)
	}
	if strings.Contains(out, "127.0.0.1:7004 keeps") || strings.Contains(out, "127.0.0.1:7003 keeps") {
		t.Errorf("a node keeping no persisted values is said to keep some:\n%s", out)
	}
}
