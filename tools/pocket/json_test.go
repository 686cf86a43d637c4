package main

import (
	"encoding/json"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/telemetry"
	"github.com/pocketstore/pocket/wire"
)

// jsonNulls lists the paths of v (decoded JSON) that hold null, like
// "jobs[0].nodes".
func jsonNulls(v any, path string) []string {
	switch x := v.(type) {
	case nil:
		return []string{path}
	case map[string]any:
		var out []string
		for k, e := range x {
			out = append(out, jsonNulls(e, path+"."+k)...)
		}
		sort.Strings(out)
		return out
	case []any:
		var out []string
		for i, e := range x {
			out = append(out, jsonNulls(e, path+"["+strconv.Itoa(i)+"]")...)
		}
		return out
	}
	return nil
}

// jsonObject decodes data, failing the test on any null in it, and
// returns the top-level object.
func jsonObject(t *testing.T, what string, data []byte) map[string]any {
	t.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s: %v: %s", what, err, data)
	}
	if nulls := jsonNulls(v, ""); len(nulls) > 0 {
		t.Errorf("%s holds null at %v: %s", what, nulls, data)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s is not an object: %s", what, data)
	}
	return obj
}

// wantKeys fails the test unless obj has exactly the keys of want.
func wantKeys(t *testing.T, what string, obj map[string]any, want ...string) {
	t.Helper()
	var got []string
	for k := range obj {
		got = append(got, k)
	}
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s has keys %v, want %v", what, got, want)
	}
}

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestJSONViewsOmitNothing: no field of a --json view type, nested ones
// included, is tagged omitempty, so every documented field is always
// there (a new user's trial: fields came and went with the data).
func TestJSONViewsOmitNothing(t *testing.T) {
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(ty reflect.Type) {
		for ty.Kind() == reflect.Pointer || ty.Kind() == reflect.Slice || ty.Kind() == reflect.Map {
			ty = ty.Elem()
		}
		if ty.Kind() != reflect.Struct || seen[ty] || ty.PkgPath() == "time" {
			return
		}
		seen[ty] = true
		for i := 0; i < ty.NumField(); i++ {
			f := ty.Field(i)
			if strings.Contains(f.Tag.Get("json"), "omitempty") {
				t.Errorf("%s.%s is tagged %q: the field vanishes when empty", ty, f.Name, f.Tag.Get("json"))
			}
			walk(f.Type)
		}
	}
	for _, v := range []any{statusJSON{}, jobMapJSON{}, deregisterJSON{}, jobProfileJSON{}, probeJSON{}} {
		walk(reflect.TypeOf(v))
	}
}

// TestStatusJSONHasNoNull: pocket status --json of a node without
// metrics or tiers and a job without nodes lists them as {} and [], not
// null nor missing; the persisted figures are always there, 0 and [] for a
// node keeping nothing. Before, a node's metrics were absent when it had
// none, and then metrics.persisted_* were absent when it kept nothing.
func TestStatusJSONHasNoNull(t *testing.T) {
	st := &wire.ClusterStatus{NodeCount: 1, JobCount: 1, Nodes: []wire.NodeStatus{{Addr: "127.0.0.1:7001", State: wire.NodeActive}},
		Jobs: []wire.JobStatus{{Job: "j-1", Name: "j"}}}
	obj := jsonObject(t, "status --json", marshal(t, statusView(st)))
	node := obj["nodes"].([]any)[0].(map[string]any)
	if m, ok := node["metrics"].(map[string]any); !ok || len(m) != 2 || m["persisted_jobs"] != 0.0 || m["persisted_bytes"] != 0.0 {
		t.Errorf("a node without metrics: metrics %v, want persisted_jobs and persisted_bytes 0 only", node["metrics"])
	}
	if p, ok := node["persisted"].([]any); !ok || len(p) != 0 {
		t.Errorf("a node keeping nothing: persisted %v, want []", node["persisted"])
	}
	if ts, ok := node["tiers"].([]any); !ok || len(ts) != 0 {
		t.Errorf("a node without tiers: tiers %v, want []", node["tiers"])
	}
	job := obj["jobs"].([]any)[0].(map[string]any)
	if ns, ok := job["nodes"].([]any); !ok || len(ns) != 0 {
		t.Errorf("a job without nodes: nodes %v, want []", job["nodes"])
	}
	jsonObject(t, "status --json of an empty cluster", marshal(t, statusView(&wire.ClusterStatus{})))
}

// TestProfileJSONHasNoNull: pocket job profile --json of a profile with
// no runs, or a run with no phases, gives runs [] and phases []. Before,
// runs was null (a controller's answer with none) and phases missing.
func TestProfileJSONHasNoNull(t *testing.T) {
	obj := jsonObject(t, "profile of no runs", marshal(t, profileViewWire(&wire.JobProfile{Name: "sort"})))
	if rs, ok := obj["runs"].([]any); !ok || len(rs) != 0 {
		t.Errorf("no runs: runs %v, want []", obj["runs"])
	}
	pol := controller.DefaultPolicy()
	for what, v := range map[string]jobProfileJSON{
		"a stored run without phases":    profileView(&state.Profile{Name: "sort", Runs: []state.Run{{Job: "sort-1"}}}, &pol),
		"an answered run without phases": profileViewWire(&wire.JobProfile{Name: "sort", Runs: []wire.ProfileRun{{Job: "sort-1"}}}),
	} {
		obj := jsonObject(t, what, marshal(t, v))
		run := obj["runs"].([]any)[0].(map[string]any)
		if ps, ok := run["phases"].([]any); !ok || len(ps) != 0 {
			t.Errorf("%s: phases %v, want []", what, run["phases"])
		}
	}
}

// TestProbeJSONHasNoNull: pocket probe --json of a sample with nothing
// measured lists every field, lists as []. Before, it printed the
// Snapshot's own JSON: net, disks and cpu null, tiers, block_latency and
// block_latency_error missing.
func TestProbeJSONHasNoNull(t *testing.T) {
	obj := jsonObject(t, "probe --json", marshal(t, probeView(&telemetry.Snapshot{})))
	wantKeys(t, "probe --json", obj, "time", "interval_ns", "net", "disks", "cpu", "rss_bytes", "tiers", "block_latency", "block_latency_error")
}

// TestDeregisterViewLists: job deregister --json splits the controller's
// failures into dead_nodes and failures, both [] when empty; a count that
// failed says so with persisted_counted false and the nodes that could
// not be asked; with every node dead nothing is left, counted.
func TestDeregisterViewLists(t *testing.T) {
	keys := []string{"job_id", "nodes", "failed", "values", "bytes", "dead_nodes", "failures", "message", "credential",
		"unreported", "persisted_counted", "persisted_bytes", "persisted_count_failures", "returned"}
	for _, c := range []struct {
		name           string
		res            wire.DropResult
		count          persistedCount
		allDead        bool
		dead, failures []string
		counted        bool
		bytes          int64
		countFailures  []string
	}{
		{"clean", wire.DropResult{Nodes: 2, Values: 3, Bytes: 30}, persistedCount{bytes: 7, counted: true}, false,
			[]string{}, []string{}, true, 7, []string{}},
		{"not counted", wire.DropResult{Nodes: 1, Failed: 1, Message: "drop job j at 127.0.0.1:7002: connection refused"},
			persistedCount{bytes: 5, failed: []string{"node 127.0.0.1:7002: connection refused"}}, false,
			[]string{}, []string{"drop job j at 127.0.0.1:7002: connection refused"}, false, 0, []string{"node 127.0.0.1:7002: connection refused"}},
		{"all dead", wire.DropResult{Failed: 1, Message: "127.0.0.1:7001: node dead"}, persistedCount{}, true,
			[]string{"127.0.0.1:7001"}, []string{}, true, 0, []string{}},
	} {
		v := deregisterView("j-1", &c.res, "cred", c.count, c.allDead)
		obj := jsonObject(t, c.name, marshal(t, v))
		wantKeys(t, c.name, obj, keys...)
		if !slices.Equal(v.DeadNodes, c.dead) || !slices.Equal(v.Failures, c.failures) || v.PersistedCounted != c.counted ||
			v.PersistedBytes != c.bytes || !slices.Equal(v.PersistedCountFailures, c.countFailures) {
			t.Errorf("%s: %+v", c.name, v)
		}
	}
}
