package main

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/controller"
)

// TestStatusPricesShownPlainAndExact (a new user's trial): the prices the
// COST line names print as plain decimals ("8.117e-05" read as e-notation)
// with enough digits that the shown price times a job's quantity gives the
// shown cost ("0.01022" for the controller's 0.0102222... did not).
func TestStatusPricesShownPlainAndExact(t *testing.T) {
	d := controller.DefaultPrices()
	phrase := pricesPhrase(pricesJSON{DRAMGiBHour: d.DRAMGiBHour, NVMeGiBHour: d.NVMeGiBHour, GbpsHour: d.GbpsHour, Source: pricesFromController})
	if regexp.MustCompile(`\de[-+]`).MatchString(phrase) {
		t.Errorf("prices %q: in e-notation", phrase)
	}
	nums := regexp.MustCompile(`[0-9][0-9.]*`).FindAllString(phrase, -1)
	if len(nums) != 3 {
		t.Fatalf("prices %q: want 3 numbers, found %q", phrase, nums)
	}
	for i, exact := range []float64{d.DRAMGiBHour, d.NVMeGiBHour, d.GbpsHour} {
		shown, err := strconv.ParseFloat(nums[i], 64)
		if err != nil {
			t.Fatal(err)
		}
		// Quantities of a job: GiB of a tier or Gb/s, up to 200.
		for _, q := range []float64{0.1, 1, 2.5, 10, 37, 64, 100, 200} {
			if got, want := costCell(shown*q), costCell(exact*q); got != want {
				t.Errorf("price %s x %g = %s $/h; the cost shown is %s $/h (price %.17g)", nums[i], q, got, want, exact)
			}
		}
	}
}

// TestStatusWarnsPriceFlagsNotUsed (a new user's trial): `pocket status
// --price-gbps-hour 5` against a controller that sends its prices prices
// the jobs at the controller's; the flag is not used, and a warning on
// stderr says so, naming the flag and the prices that apply.
func TestStatusWarnsPriceFlagsNotUsed(t *testing.T) {
	addr := pricedController(t)
	var out string
	var code int
	errOut, _ := captured(t, &os.Stderr, func() int {
		out, code = stdoutOf(t, func() int {
			return runStatus([]string{"--controller", addr, "--insecure", "--price-gbps-hour", "5"})
		})
		return code
	})
	if code != 0 || !strings.Contains(out, "the controller's prices (1 $ per GiB-hour of DRAM, 0.001 of NVMe, 1 per Gb/s-hour)") {
		t.Errorf("status --price-gbps-hour 5: exit %d, want 0 at the controller's prices:\n%s", code, out)
	}
	for _, want := range []string{"warning:", "--price-gbps-hour 5 was not used", "the controller sends its own prices (1 $ per GiB-hour of DRAM",
		"no what-if", "pocket controller --prices FILE"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("status --price-gbps-hour 5: stderr does not say %q:\n%s", want, errOut)
		}
	}
}
