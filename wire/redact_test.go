package wire

import (
	"testing"

	"github.com/pocketstore/pocket/internal/redact/redacttest"
)

// TestPrintingHidesTheToken: the messages that carry a job's token print
// it redacted for every fmt verb and in log/slog (they printed its bytes).
func TestPrintingHidesTheToken(t *testing.T) {
	tok := []byte("tok-SECRET-0123456789abcdef")
	redacttest.Check(t, "Request", Request{Job: []byte("sort-3"), Key: []byte("k"), Token: tok}, tok)
	redacttest.Check(t, "JobEpoch", JobEpoch{Job: "sort-3", Token: tok}, tok)
	redacttest.Check(t, "JobRef", JobRef{Job: "sort-3", Token: tok}, tok)
	redacttest.Check(t, "PlacementMap", PlacementMap{Job: "sort-3", Token: tok, Nodes: []MapNode{{Addr: "a", Weight: 1}}}, tok)
	redacttest.Check(t, "*PlacementMap", &PlacementMap{Job: "sort-3", Token: tok}, tok)
}
