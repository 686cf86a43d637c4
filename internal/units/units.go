// Package units parses and prints byte sizes written like 1KiB, 512MiB or 2GiB.
// Binary suffixes (KiB, MiB, GiB, TiB, PiB, EiB) are powers of 1024; decimal
// ones (KB ... EB) powers of 1000; a bare number is bytes.
package units

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

var suffixes = []struct {
	s string
	m int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"PiB", 1 << 50}, {"EiB", 1 << 60},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"PB", 1e15}, {"EB", 1e18},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
	{"B", 1},
}

// ParseSize parses a byte size. It rejects negative and overflowing values,
// and fractions of a byte: a bare number with a fraction ("1.5"), and a
// value above 0 that is less than a byte ("0.5", "0.0001KiB"), which
// truncated to 0 had meant "none" or "no limit". A fraction of a larger
// unit is rounded to the nearest byte ("0.1KiB" is 102 bytes). Errors name
// the input.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, suf := range suffixes {
		if len(t) > len(suf.s) && strings.EqualFold(t[len(t)-len(suf.s):], suf.s) {
			mult, t = suf.m, strings.TrimSpace(t[:len(t)-len(suf.s)])
			break
		}
	}
	if n, err := strconv.ParseInt(t, 10, 64); err == nil {
		if n < 0 || (n > 0 && n > math.MaxInt64/mult) {
			return 0, fmt.Errorf("size %q: out of range", s)
		}
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || math.IsNaN(f) || f*float64(mult) >= math.MaxInt64 {
		return 0, fmt.Errorf("size %q: want a number with an optional suffix (KiB, MiB, GiB, TiB, PiB, EiB; KB ... EB; B)", s)
	}
	b := f * float64(mult)
	if (mult == 1 && b != math.Trunc(b)) || (b > 0 && b < 1) {
		return 0, fmt.Errorf("size %q: not a whole number of bytes", s)
	}
	return int64(math.Round(b)), nil
}

// FormatSize prints n with the largest binary suffix that keeps it >= 1.
func FormatSize(n int64) string {
	const unit = 1024
	if n < unit && n > -unit {
		return strconv.FormatInt(n, 10) + "B"
	}
	f, i := float64(n), -1
	for math.Abs(f) >= unit && i < 3 {
		f /= unit
		i++
	}
	s := strconv.FormatFloat(f, 'f', 2, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s + []string{"KiB", "MiB", "GiB", "TiB"}[i]
}

// FormatFactor prints a ratio such as an oversubscription: with two
// decimals under 1.1, where one would print 16,600 of 16,000 as "1.0x",
// else one ("2.8x").
func FormatFactor(f float64) string {
	if f < 1.1 {
		return strconv.FormatFloat(f, 'f', 2, 64) + "x"
	}
	return strconv.FormatFloat(f, 'f', 1, 64) + "x"
}
