package pocket

import (
	"strings"
	"testing"
)

// TestCompatMalformedCredentialIsAnError: a POCKET_CREDENTIAL that is not
// a credential (say the whole "export POCKET_CREDENTIAL=..." line was
// captured) fails the call naming it, as a POCKET_TOKEN that is not hex
// does; before, it was ignored and the call went on to a misleading "no
// token". An unset one is no credential and no error.
func TestCompatMalformedCredentialIsAnError(t *testing.T) {
	t.Setenv("POCKET_CREDENTIAL", "")
	if c, err := credentialOf("job-1"); c != "" || err != nil {
		t.Fatalf("unset POCKET_CREDENTIAL: %q, %v; want none, no error", c, err)
	}
	t.Setenv("POCKET_CREDENTIAL", "export POCKET_CREDENTIAL=eyJq")
	h := &Handle{jobs: map[string]*Job{}}
	if _, err := h.job("job-1"); err == nil || !strings.Contains(err.Error(), "POCKET_CREDENTIAL is not a job credential") {
		t.Fatalf("malformed POCKET_CREDENTIAL: %v; want an error naming it", err)
	}
}
