package main

import (
	"strings"
	"testing"
)

// TestCostCell: a small job's cost is shown, not rounded to 0.0000 (a
// new-user trial's 100 MiB NVMe job at 7.93e-06 $/h read as free).
func TestCostCell(t *testing.T) {
	for usd, want := range map[float64]string{0: "0.0000", 7.93e-06: "<0.0001", 7.5e-09: "<0.0001", 0.00006: "0.0001", 0.00012: "0.0001", 1.23456: "1.2346"} {
		if got := costCell(usd); got != want {
			t.Errorf("costCell(%g) = %q, want %q", usd, got, want)
		}
	}
}

// TestMbpsEffectWithNothingAllotted: the warning does not say jobs
// allotted 0 Mb/s get less than theirs (a new-user trial's "the 2 job(s)
// already on the tier (0 Mb/s allotted) get less than theirs").
func TestMbpsEffectWithNothingAllotted(t *testing.T) {
	if got := mbpsEffect(tierFigures{jobs: 2}); strings.Contains(got, "already on the tier") {
		t.Errorf("with 2 jobs allotted nothing: %q", got)
	}
	if got := mbpsEffect(tierFigures{jobs: 2, allocMbps: 800}); !strings.Contains(got, "the 2 job(s) already on the tier (800 Mb/s allotted)") {
		t.Errorf("with 2 jobs allotted 800 Mb/s: %q", got)
	}
}
