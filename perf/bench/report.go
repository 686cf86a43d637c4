package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pocketstore/pocket/internal/units"
)

// Result is one run as reported: the text report and the JSON object (one
// line, fields named as in the issue: ops_per_sec, mb_per_sec, p50_us,
// p99_us, p999_us) carry the same fields. MB are 10^6 bytes.
type Result struct {
	Label      string  `json:"label,omitempty"`
	Target     string  `json:"target"` // pocket://host:port, redis://host:port or tcp://... (loopback)
	Op         string  `json:"op"`
	Size       int64   `json:"size"`
	Conns      int     `json:"conns"`
	Pipeline   int     `json:"pipeline"`
	Keys       int     `json:"keys"`
	DurationS  float64 `json:"duration_s"` // the time measured, which the rates are over (RequestedS)
	Ops        uint64  `json:"ops"`
	Errors     uint64  `json:"errors"`
	OpsPerSec  float64 `json:"ops_per_sec"`
	MBPerSec   float64 `json:"mb_per_sec"`
	P50us      float64 `json:"p50_us"`
	P99us      float64 `json:"p99_us"`
	P999us     float64 `json:"p999_us"`
	MeanUs     float64 `json:"mean_us"`
	MaxUs      float64 `json:"max_us"`
	FirstError string  `json:"first_error,omitempty"`
	// Refused and FirstRefusal are Stats.Refused and Stats.FirstRefusal:
	// requests a node refused for a stale map epoch, which the run adopted.
	Refused      uint64 `json:"refused,omitempty"`
	FirstRefusal string `json:"first_refusal,omitempty"`
	// Preloaded is the keys a get run put before its measurement;
	// WrittenKeys the distinct keys the run wrote in all (preload and
	// puts), DeletedKeys those it deleted at its end; Cleanup what became
	// of them: "deleted", "kept" (--keep), "deregistered" (a fresh job's
	// run: deregistering deletes them), "none" (the store keeps nothing:
	// the echo server) or "incomplete" (CleanupError says why).
	Preloaded    int    `json:"preloaded"`
	WrittenKeys  int    `json:"written_keys"`
	DeletedKeys  int    `json:"deleted_keys"`
	Cleanup      string `json:"cleanup,omitempty"`
	CleanupError string `json:"cleanup_error,omitempty"`
	// ServerCPUus and GenCPUus are Stats.ServerCPU and Stats.GenCPU per
	// operation, in microseconds (omitted without --server-pid); CPUError
	// is Stats.CPUError.
	ServerCPUus float64 `json:"server_cpu_us_per_op,omitempty"`
	GenCPUus    float64 `json:"gen_cpu_us_per_op,omitempty"`
	CPUError    string  `json:"cpu_error,omitempty"`
	// RequestedS is the --duration of a run that ended before it (0 for
	// one that went to its end: DurationS is then the time asked for);
	// Interrupted says its context (a signal) ended it, else its
	// connections stopped it (the error says why).
	RequestedS  float64 `json:"requested_s,omitempty"`
	Interrupted bool    `json:"interrupted,omitempty"`
	// NoSpace and FirstNoSpace are Stats.NoSpace and Stats.FirstNoSpace:
	// puts the store refused for lack of space, warm-up included (not
	// wrong responses: not in Errors).
	NoSpace      uint64 `json:"no_space,omitempty"`
	FirstNoSpace string `json:"first_no_space,omitempty"`
}

// Cleanup values of Result.
const (
	CleanupDeleted      = "deleted"
	CleanupKept         = "kept"
	CleanupDeregistered = "deregistered"
	CleanupNone         = "none"
	CleanupIncomplete   = "incomplete"
)

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// NewResult summarizes a run's stats.
func NewResult(target, label string, st *Stats) Result {
	h := &st.Latency
	r := Result{
		Label: label, Target: target, Op: st.Config.Op.String(), Size: int64(st.Config.Size),
		Conns: st.Config.Conns, Pipeline: st.Config.Pipeline, Keys: st.Config.Keys,
		DurationS: st.Measured().Seconds(), Ops: st.Ops, Errors: st.Errors,
		OpsPerSec: st.OpsPerSec(), MBPerSec: st.MBPerSec(),
		P50us: micros(h.Quantile(0.50)), P99us: micros(h.Quantile(0.99)), P999us: micros(h.Quantile(0.999)),
		MeanUs: micros(h.Mean()), MaxUs: micros(h.Max()), FirstError: st.FirstError,
		NoSpace: st.NoSpace, FirstNoSpace: st.FirstNoSpace,
		Refused: st.Refused, FirstRefusal: st.FirstRefusal,
		Preloaded: st.Preloaded, WrittenKeys: st.Written, DeletedKeys: st.Deleted, CleanupError: st.CleanupError,
		Cleanup: CleanupDeleted,
	}
	if st.EndedEarly {
		r.RequestedS, r.Interrupted = st.Config.Duration.Seconds(), st.Interrupted
	}
	if st.Ops > 0 && st.CPUError == "" && st.Config.ServerPID != 0 {
		r.ServerCPUus = micros(st.ServerCPU) / float64(st.Ops)
		r.GenCPUus = micros(st.GenCPU) / float64(st.Ops)
	}
	r.CPUError = st.CPUError
	switch {
	case st.CleanupError != "":
		r.Cleanup = CleanupIncomplete
	case st.Config.Keep:
		r.Cleanup = CleanupKept
	}
	return r
}

// Store names the kind of store a result measured: the scheme of its target
// ("pocket", "redis", "tcp").
func (r *Result) Store() string {
	scheme, _, _ := strings.Cut(r.Target, "://")
	return scheme
}

// WriteJSON writes r as one JSON object on one line.
func (r *Result) WriteJSON(w io.Writer) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// WriteText writes r for a person to read.
func (r *Result) WriteText(w io.Writer) error {
	if r.Store() == "tcp" {
		_, err := fmt.Fprintf(w, "%s  single-stream transfer for %.1fs: %s MB/s\n%s",
			r.Target, r.DurationS, fmtFloat(r.MBPerSec, 1), r.endedNote())
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %s %s  conns %d  pipeline %d  keys %d  %.1fs\n",
		r.Target, r.Op, units.FormatSize(r.Size), r.Conns, r.Pipeline, r.Keys, r.DurationS)
	b.WriteString(r.endedNote())
	fmt.Fprintf(&b, "  ops/s    %s\n", fmtFloat(r.OpsPerSec, 0))
	fmt.Fprintf(&b, "  MB/s     %s\n", fmtFloat(r.MBPerSec, 1))
	fmt.Fprintf(&b, "  latency  p50 %s  p99 %s  p99.9 %s  mean %s  max %s\n",
		fmtMicros(r.P50us), fmtMicros(r.P99us), fmtMicros(r.P999us), fmtMicros(r.MeanUs), fmtMicros(r.MaxUs))
	if r.ServerCPUus > 0 || r.GenCPUus > 0 {
		fmt.Fprintf(&b, "  cpu      server %s us/op, generator %s us/op (user + system, the measured window)\n",
			fmtFloat(r.ServerCPUus, 2), fmtFloat(r.GenCPUus, 2))
	}
	if r.CPUError != "" {
		fmt.Fprintf(&b, "  cpu      %s\n", r.CPUError)
	}
	fmt.Fprintf(&b, "  errors   %d\n", r.Errors)
	if r.FirstError != "" {
		fmt.Fprintf(&b, "  first error: %s\n", r.FirstError)
	}
	if r.NoSpace > 0 {
		fmt.Fprintf(&b, "  no space %d put(s) refused, the store full (warm-up included); first: %s\n", r.NoSpace, r.FirstNoSpace)
	}
	if r.Refused > 0 {
		fmt.Fprintf(&b, "  refused  %d, not retried (warm-up included); first: %s\n", r.Refused, r.FirstRefusal)
	}
	if note := r.keysNote(); note != "" {
		fmt.Fprintf(&b, "  keys     %s\n", note)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// endedNote is the report's line on a run that ended before its
// --duration: "  interrupted after 3.0s of 30s: the rates are over the
// 3.0s measured", or "stopped" for one its connections ended (the error
// says why); "" for a run that went to its end.
func (r *Result) endedNote() string {
	if r.RequestedS <= 0 {
		return ""
	}
	asked := time.Duration(math.Round(r.RequestedS*1e3)) * time.Millisecond
	elapsed := time.Duration(math.Round(r.DurationS*1e3)) * time.Millisecond
	how, why := "interrupted", ""
	if !r.Interrupted {
		how, why = "stopped", " (the error below says why)"
	}
	if elapsed <= 0 {
		return fmt.Sprintf("  %s %s%s: nothing measured\n", how, whenEnded(0, asked), why)
	}
	return fmt.Sprintf("  %s %s%s: the rates are over the %.1fs measured\n", how, whenEnded(elapsed, asked), why, r.DurationS)
}

// keysNote says what the run wrote and what became of it: "preloaded
// 100,000 before the measurement; deleted the 100,000 key(s) the run
// wrote"; "" for a result without those figures (an older results file).
// When no measured operation succeeded it says that the keys are the
// preload's (a get run) or the warm-up's (a put run), not the
// measurement's: "deleted the 3,584 key(s) the warm-up wrote (no measured
// put succeeded)".
func (r *Result) keysNote() string {
	var parts []string
	switch {
	case r.Preloaded > 0 && r.Cleanup == CleanupNone:
		// The echo server answers puts and stores nothing (a new user's
		// trial read "preloaded 100,000" as keys held).
		parts = append(parts, "sent "+fmtFloat(float64(r.Preloaded), 0)+" preload puts before the measurement, which the echo server answers and does not store")
	case r.Preloaded > 0:
		parts = append(parts, "preloaded "+fmtFloat(float64(r.Preloaded), 0)+" before the measurement (a get run puts its keys first)")
	}
	w := fmtFloat(float64(r.WrittenKeys), 0)
	by, none := "the run", ""
	if r.Ops == 0 {
		by = "the warm-up"
		if r.Preloaded > 0 {
			by = "the preload"
		}
		none = "no measured " + r.Op + " succeeded"
	}
	switch {
	case r.WrittenKeys == 0:
	case r.Cleanup == CleanupDeleted:
		parts = append(parts, "deleted the "+w+" key(s) "+by+" wrote"+aside(none))
	case r.Cleanup == CleanupKept:
		parts = append(parts, "kept the "+w+" key(s) "+by+" wrote"+aside("--keep", none))
	case r.Cleanup == CleanupDeregistered:
		parts = append(parts, "the "+w+" key(s) "+by+" wrote went with its job, deregistered"+aside(none))
	case r.Cleanup == CleanupIncomplete:
		parts = append(parts, "deleted "+fmtFloat(float64(r.DeletedKeys), 0)+" of the "+w+" key(s) "+by+" wrote"+aside(none)+", the rest are left: "+r.CleanupError)
	}
	return strings.Join(parts, "; ")
}

// aside is " (a; b)" of the notes that are not "", or "" when all are.
func aside(notes ...string) string {
	notes = slices.DeleteFunc(notes, func(n string) bool { return n == "" })
	if len(notes) == 0 {
		return ""
	}
	return " (" + strings.Join(notes, "; ") + ")"
}

// fmtMicros prints a latency in µs, or ms above 10 ms.
func fmtMicros(us float64) string {
	if us >= 10000 {
		return fmtFloat(us/1000, 1) + "ms"
	}
	return fmtFloat(us, 1) + "us"
}

// fmtFloat prints f with prec decimals and thousands separators.
func fmtFloat(f float64, prec int) string {
	s := strconv.FormatFloat(f, 'f', prec, 64)
	intPart, frac, hasFrac := strings.Cut(s, ".")
	neg := strings.HasPrefix(intPart, "-")
	intPart = strings.TrimPrefix(intPart, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if hasFrac {
		b.WriteByte('.')
		b.WriteString(frac)
	}
	return b.String()
}

// ReadResults reads results written by WriteJSON, one per line; blank
// lines are skipped.
func ReadResults(r io.Reader) ([]Result, error) {
	var out []Result
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		var res Result
		if err := json.Unmarshal([]byte(text), &res); err != nil {
			return nil, fmt.Errorf("bench: results line %d: %w", line, err)
		}
		out = append(out, res)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("bench: reading results: %w", err)
	}
	return out, nil
}
