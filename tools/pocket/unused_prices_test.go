package main

import (
	"strings"
	"testing"
)

// TestJobRegisterSaysItsPricesWentUnused: job register's price flags
// price only the check of hints against a controller that sends no
// prices; given without hints, or to a controller that sends its own,
// they are not used, and job register says so. Before, it passed them
// over silently (a new user's trial: --price-gbps-hour 5).
func TestJobRegisterSaysItsPricesWentUnused(t *testing.T) {
	pf := priceFlags{gbps: 5, gbpsSet: true}
	for _, c := range []struct {
		hinted, ctl bool
		want        string
	}{
		{false, false, "none was given"},
		{true, true, "the controller sends its own prices"},
		{true, false, ""},
	} {
		got := unusedPrices(&pf, c.hinted, c.ctl)
		if c.want == "" && got != "" || c.want != "" && (!strings.Contains(got, c.want) || !strings.Contains(got, "--price-gbps-hour")) {
			t.Errorf("hinted %v, controller's prices %v: %q; want %q", c.hinted, c.ctl, got, c.want)
		}
	}
	if got := unusedPrices(&priceFlags{}, false, true); got != "" {
		t.Errorf("no price flag: %q; want nothing", got)
	}
}
