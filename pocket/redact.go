package pocket

import (
	"fmt"
	"log/slog"
	"slices"

	"github.com/pocketstore/pocket/internal/redact"
)

// A job's token is a capability: whoever holds it reads, writes and
// deletes the job's values. Map and Job print it redacted, its length
// only ("[redacted 49 bytes]"), for every fmt verb and in log/slog, so a
// map logged or printed while debugging leaks no token. Job.Token and
// Credential hand the token out on purpose.

// Format prints the map as fmt would, its Token redacted.
func (m Map) Format(f fmt.State, verb rune) { redact.Format(f, verb, m) }

// String is the map as %v prints it, its Token redacted.
func (m Map) String() string { return fmt.Sprint(m) }

// LogValue is the map as log/slog records it, its Token redacted.
func (m Map) LogValue() slog.Value { return redact.LogValue(m) }

// jobView is what a Job prints: its current map and whether it ended.
type jobView struct {
	Map   Map
	Ended bool
}

func (j *Job) view() jobView { return jobView{Map: j.snapshot(), Ended: j.Ended()} }

// Format prints the job's current map and whether it ended, the map's
// Token redacted.
func (j *Job) Format(f fmt.State, verb rune) {
	if j == nil {
		_, _ = f.Write([]byte("<nil>"))
		return
	}
	redact.FormatAs(f, verb, "&pocket.Job", j.view())
}

// String is the job as %v prints it, its token redacted.
func (j *Job) String() string { return fmt.Sprint(j) }

// LogValue is the job as log/slog records it, its token redacted.
func (j *Job) LogValue() slog.Value {
	if j == nil {
		return slog.StringValue("<nil>")
	}
	return redact.LogValue(j.view())
}

// storeView is what a Store prints: none of its fields (a controller
// client, connection pools) but its chunk size, so that no path through
// it reaches a token or secret.
type storeView struct {
	ChunkSize  int64
	Controller bool
}

// Format prints the store's configuration, no credential.
func (s *Store) Format(f fmt.State, verb rune) {
	if s == nil {
		_, _ = f.Write([]byte("<nil>"))
		return
	}
	redact.FormatAs(f, verb, "&pocket.Store", storeView{ChunkSize: s.cfg.ChunkSize, Controller: s.ctl != nil})
}

// handleView is what a Handle prints: the ids of its jobs, no token.
type handleView struct{ Jobs []string }

// Format prints the handle's job ids, no token.
func (h *Handle) Format(f fmt.State, verb rune) {
	if h == nil {
		_, _ = f.Write([]byte("<nil>"))
		return
	}
	h.mu.Lock()
	ids := make([]string, 0, len(h.jobs))
	for id := range h.jobs {
		ids = append(ids, id)
	}
	h.mu.Unlock()
	slices.Sort(ids)
	redact.FormatAs(f, verb, "&pocket.Handle", handleView{Jobs: ids})
}
