package units

import "testing"

func TestParseSize(t *testing.T) {
	cases := map[string]int64{
		"0": 0, "17": 17, "1KiB": 1024, "512MiB": 512 << 20, "2GiB": 2 << 30,
		"1kib": 1024, "4K": 4096, "1MB": 1e6, "1.5KiB": 1536, " 8 MiB ": 8 << 20, "10B": 10,
		"0.1KiB": 102, "0.9KiB": 922, "0.0": 0, "2.0": 2,
	}
	for in, want := range cases {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	// PiB and EiB were refused as if malformed (a new user's --capacity 1PiB).
	for in, want := range map[string]int64{"1PiB": 1 << 50, "7EiB": 7 << 60, "2PB": 2e15, "9EB": 9e18} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "KiB", "-1", "x1", "1XB", "99999999999TiB", "NaN", "8EiB", "10EB",
		"0.5", "1.5", "0.5B", "0.0001KiB"} { // fractions of a byte: 0.5 had parsed as 0, "none" or "no limit"
		if n, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", bad, n)
		}
	}
}

func TestFormatSize(t *testing.T) {
	cases := map[int64]string{0: "0B", 1023: "1023B", 1024: "1KiB", 1536: "1.5KiB", 64 << 20: "64MiB", 3 << 30: "3GiB"}
	for in, want := range cases {
		if got := FormatSize(in); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", in, got, want)
		}
	}
}

// TestFormatFactor: two decimals under 1.1 (24,400 of 24,000 Mb/s read
// "1.0x" in a registration's note beside status's "1.02x"), one above.
func TestFormatFactor(t *testing.T) {
	for f, want := range map[float64]string{24400.0 / 24000: "1.02x", 0.5: "0.50x", 1.1: "1.1x", 2.75: "2.8x", 6.73: "6.7x"} {
		if got := FormatFactor(f); got != want {
			t.Errorf("FormatFactor(%v) = %q, want %q", f, got, want)
		}
	}
}
