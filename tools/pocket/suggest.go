package main

import (
	"sort"
	"strings"
)

// didYouMean is "; did you mean X?" for the name among names closest to
// got (Levenshtein distance, at most 2 and at most half got's length),
// or "" when none is that close: a new user's "pocket stauts" was told
// only that the command is unknown.
func didYouMean(got string, names []string) string {
	best, bestD := "", 3
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	for _, n := range sorted {
		if d := editDistance(strings.ToLower(got), n); d < bestD && 2*d <= len(got) {
			best, bestD = n, d
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
