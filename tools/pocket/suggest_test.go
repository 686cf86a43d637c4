package main

import "testing"

// TestDidYouMean: a mistyped command or subcommand is told the closest
// one; a word far from all is told none. Before, "pocket stauts" read
// only "unknown command" (a new user's trial).
func TestDidYouMean(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{"stauts", "; did you mean status?"},
		{"Status", "; did you mean status?"},
		{"pu", "; did you mean put?"},
		{"stat", "; did you mean status?"}, // as close as spot; status begins with it
		{"deregistr", ""},
		{"xyzzy", ""},
		{"", ""},
	} {
		if got := didYouMean(c.got, topNames()); got != c.want {
			t.Errorf("didYouMean(%q) = %q, want %q", c.got, got, c.want)
		}
	}
	if got := didYouMean("deregistr", subNames("job")); got != "; did you mean deregister?" {
		t.Errorf("job deregistr: %q", got)
	}
}
