package main

import (
	"sort"
	"strings"
)

// didYouMean is "; did you mean X?" for the name among names closest to
// got (Levenshtein distance, at most 2 and at most half got's length),
// or "" when none is that close: a new user's "pocket stauts" was told
// only that the command is unknown. Of names as close, one that begins
// with got comes first: "stat" was told "spot", as close as "status".
func didYouMean(got string, names []string) string {
	best, bestD, bestPrefix := "", 3, false
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	low := strings.ToLower(got)
	for _, n := range sorted {
		d, prefix := editDistance(low, n), strings.HasPrefix(n, low)
		if 2*d <= len(got) && (d < bestD || d == bestD && prefix && !bestPrefix) {
			best, bestD, bestPrefix = n, d, prefix
		}
	}
	if best == "" {
		return ""
	}
	return "; did you mean " + best + "?"
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// topNames are the top-level commands' names.
func topNames() []string {
	var out []string
	for name, c := range commands {
		if !strings.Contains(name, " ") && c.run != nil {
			out = append(out, name)
		}
	}
	return out
}
