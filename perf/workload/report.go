package workload

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/pocketstore/pocket/internal/units"
)

// WriteText prints one result for people.
func WriteText(w io.Writer, r Result) {
	fmt.Fprintf(w, "%s on %s: %d workers, %s\n", r.Workload, r.Backend, r.Workers, units.FormatSize(r.SizeBytes))
	for _, p := range r.Phases {
		mark := ""
		if !p.Timed {
			mark = " (untimed)"
		}
		fmt.Fprintf(w, "  %-8s %3d tasks %8.3f s%s\n", p.Name, p.Tasks, p.Seconds, mark)
	}
	fmt.Fprintf(w, "  total    %.3f s", r.TotalSeconds)
	if r.ShuffleSeconds != nil {
		fmt.Fprintf(w, ", shuffle %.3f s", *r.ShuffleSeconds)
	}
	fmt.Fprintf(w, ", %s moved", units.FormatSize(r.BytesMoved))
	if r.TotalSeconds > 0 {
		fmt.Fprintf(w, " (%.0f MB/s)", float64(r.BytesMoved)/r.TotalSeconds/1e6)
	}
	fmt.Fprintf(w, "\n  verified %v", r.Verified)
	if r.VerifyError != "" {
		fmt.Fprintf(w, ": %s", r.VerifyError)
	}
	fmt.Fprintln(w)
}

// WriteMarkdown prints results as one Markdown table, in the given order.
func WriteMarkdown(w io.Writer, rs []Result) {
	fmt.Fprintln(w, "| workload | store | workers | size | total s | shuffle s | moved | MB/s | verified |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---|")
	for _, r := range rs {
		shuffle := "-"
		if r.ShuffleSeconds != nil {
			shuffle = fmt.Sprintf("%.2f", *r.ShuffleSeconds)
		}
		rate := 0.0
		if r.TotalSeconds > 0 {
			rate = float64(r.BytesMoved) / r.TotalSeconds / 1e6
		}
		ok := "yes"
		if !r.Verified {
			ok = "**no**"
		}
		fmt.Fprintf(w, "| %s | %s | %d | %s | %.2f | %s | %s | %.0f | %s |\n", r.Workload, r.Backend, r.Workers,
			units.FormatSize(r.SizeBytes), r.TotalSeconds, shuffle, units.FormatSize(r.BytesMoved), rate, ok)
	}
}

// Progress draws one progress bar per phase on a terminal:
//
//	map      [##########..........]  8/16  1.2s
type Progress struct {
	mu    sync.Mutex
	w     io.Writer
	phase string
}

// NewProgress returns a Progress drawing on w.
func NewProgress(w io.Writer) *Progress { return &Progress{w: w} }

// Update redraws the bar; a new phase starts a new line.
func (p *Progress) Update(phase string, done, total int, elapsed time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.phase != "" && phase != p.phase {
		fmt.Fprintln(p.w)
	}
	p.phase = phase
	const width = 20
	n := width * done / max(total, 1)
	fmt.Fprintf(p.w, "\r%-8s [%s%s] %3d/%d %6.1fs", phase, strings.Repeat("#", n), strings.Repeat(".", width-n),
		done, total, elapsed.Seconds())
	if done == total && total > 0 && phase == "check" {
		fmt.Fprintln(p.w)
		p.phase = ""
	}
}
