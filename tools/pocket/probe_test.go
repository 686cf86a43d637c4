package main

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/telemetry"
)

// TestProbeJSONRoundsItsFigures: `pocket probe --json` prints one object
// a line whose fractional figures keep figureDigits significant digits,
// as every --json output does (writeJSON). Before, its rates were printed
// as computed ("busy_percent":9.090909091243157: a new user's trial).
func TestProbeJSONRoundsItsFigures(t *testing.T) {
	snap := telemetry.Snapshot{Time: time.Now(), Interval: time.Second,
		CPU: []telemetry.CPUBusy{{CPU: 0, BusyPercent: 9.090909091243157}},
		Net: []telemetry.NetRate{{Device: "lo", RxBytes: 123456789, RxBytesPerSec: 13044.62295614216, TxBytesPerSec: 0.000123456789}}}
	var out bytes.Buffer
	for range 2 {
		if err := printSample(&out, &snap, true); err != nil {
			t.Fatal(err)
		}
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want one object a line for 2 samples:\n%s", len(lines), out.String())
	}
	var figures []string
	for _, l := range lines {
		d := json.NewDecoder(strings.NewReader(l))
		d.UseNumber()
		var v map[string]any
		if err := d.Decode(&v); err != nil {
			t.Fatalf("a line is not a JSON object: %v\n%s", err, l)
		}
		eachNumber(v, func(n json.Number) {
			if strings.ContainsAny(string(n), ".eE") {
				figures = append(figures, string(n))
			}
		})
	}
	slices.Sort(figures)
	want := []string{"0.000123457", "0.000123457", "13044.6", "13044.6", "9.09091", "9.09091"}
	if !slices.Equal(figures, want) {
		t.Errorf("fractional figures %v, want %v:\n%s", figures, want, out.String())
	}
	if !strings.Contains(out.String(), `"rx_bytes":123456789`) {
		t.Errorf("an integer figure changed:\n%s", out.String())
	}
}

// eachNumber calls f on every number of the decoded JSON value v.
func eachNumber(v any, f func(json.Number)) {
	switch x := v.(type) {
	case json.Number:
		f(x)
	case map[string]any:
		for _, e := range x {
			eachNumber(e, f)
		}
	case []any:
		for _, e := range x {
			eachNumber(e, f)
		}
	}
}
