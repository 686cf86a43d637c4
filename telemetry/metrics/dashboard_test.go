package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dashboardPath is the Grafana dashboard, from this package's directory.
const dashboardPath = "../../deploy/grafana/pocket.json"

type dashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID      int    `json:"id"`
		Type    string `json:"type"`
		Title   string `json:"title"`
		GridPos *struct {
			W, H int
		} `json:"gridPos"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

var metricRef = regexp.MustCompile(`pocket_[a-z0-9_]+`)

// TestDashboard: deploy/grafana/pocket.json is valid JSON, every query
// names only metrics the servers export (names.go), with balanced
// parentheses, and the dashboard covers the figures it is for.
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	if d.Title == "" || d.UID == "" || !slices.ContainsFunc(d.Templating.List, func(v struct {
		Name string `json:"name"`
	}) bool {
		return v.Name == "datasource"
	}) {
		t.Fatalf("dashboard without title, uid or datasource variable: %q %q", d.Title, d.UID)
	}
	used := map[string]bool{}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] || p.GridPos == nil || p.GridPos.W == 0 {
			t.Errorf("panel %q: id %d repeated or no position", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			checkExpr(t, p.Title, q.Expr, used)
		}
	}
	for _, want := range []string{NodeRequests, NodeRequestDuration, NodeReceivedBytes, NodeSentBytes, NodeTierUsed,
		NodeTierCapacity, NodeConnections, ControllerJobs, ControllerNodes, AutoscalerDecisions,
		ControllerOrphansHeld, ControllerOrphansDropped, ControllerOrphanBytesDropped} {
		if !used[want] {
			t.Errorf("the dashboard shows no %s", want)
		}
	}
}

func checkExpr(t *testing.T, panel, expr string, used map[string]bool) {
	t.Helper()
	if strings.Count(expr, "(") != strings.Count(expr, ")") || strings.Count(expr, "{") != strings.Count(expr, "}") {
		t.Errorf("panel %q: unbalanced query %q", panel, expr)
	}
	for _, ref := range metricRef.FindAllString(expr, -1) {
		name := ref
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(ref, suffix); ok && slices.Contains(Names, base) {
				name = base
			}
		}
		if !slices.Contains(Names, name) {
			t.Errorf("panel %q: %s is not an exported metric (names.go)", panel, ref)
		}
		used[name] = true
	}
}
