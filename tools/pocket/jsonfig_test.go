package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestJSONFiguresRounded: a new user's trial read "alloc_mbps":
// 6400.000000000002 from `pocket job register --json`. Every --json
// output goes through writeJSON, which rounds fractional figures to six
// significant digits without touching integer parts, integers or strings.
func TestJSONFiguresRounded(t *testing.T) {
	reg := jobMapJSON{JobID: "j-1", AllocMbps: 6400.000000000002, AllocBytes: 1 << 30,
		Quota: quotaJSON{Mbps: 0.1 + 0.2, LeftMbps: 100.0 / 3},
		Nodes: []mapNodeJSON{{Addr: "10.0.0.1:2.5", Weight: 1.0 / 3}}, Note: "rate 6400.000000000002"}
	status := statusJSON{Nodes: []statusNodeJSON{{RxMbps: 12.345678901, Metrics: map[string]float64{"bytes_total": 12345678901}}}}
	for _, c := range []struct {
		v    any
		want []string
	}{
		{reg, []string{`"alloc_mbps": 6400,`, `"alloc_bytes": 1073741824`, `"mbps": 0.3,`, "\"left_mbps\": 33.3333\n",
			`"weight": 0.333333,`, `"addr": "10.0.0.1:2.5"`, `"note": "rate 6400.000000000002"`}},
		{status, []string{`"rx_mbps": 12.3457,`, `"bytes_total": 12345678901`}},
	} {
		var out bytes.Buffer
		if err := writeJSON(&out, c.v); err != nil {
			t.Fatal(err)
		}
		for _, w := range c.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("output lacks %s:\n%s", w, out.String())
			}
		}
		if !json.Valid(out.Bytes()) || !strings.HasSuffix(out.String(), "}\n") {
			t.Errorf("not one valid JSON document ending in a newline:\n%s", out.String())
		}
	}
	for f, want := range map[float64]string{6400.000000000002: "6400", -2.5e-7: "-0.00000025", 1e22: "1e+22", 999999.9999999: "1000000"} {
		if got := roundFigure(f); got != want {
			t.Errorf("roundFigure(%v) = %s, want %s", f, got, want)
		}
	}
}
