package main

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// TestNoTokenSaysWhatTheCredentialWouldDo: a data command without a
// token names $POCKET_CREDENTIAL for an ended job, and says whose job a
// credential that is set names. Before, it said only to set POCKET_TOKEN
// (a new user's trial).
func TestNoTokenSaysWhatTheCredentialWouldDo(t *testing.T) {
	t.Setenv("POCKET_CREDENTIAL", "")
	if err := noTokenFor("etl-3"); !errors.Is(err, errNoToken) || !strings.Contains(err.Error(), "for a job that has ended, set $POCKET_CREDENTIAL") {
		t.Errorf("no credential: %v", err)
	}
	other := base64.RawURLEncoding.EncodeToString([]byte(`{"job":"sort-9","nodes":[{"ID":"127.0.0.1:7100","Weight":1}]}`))
	t.Setenv("POCKET_CREDENTIAL", other)
	if err := noTokenFor("etl-3"); !errors.Is(err, errNoToken) || !strings.Contains(err.Error(), "$POCKET_CREDENTIAL is job sort-9's, not etl-3's") {
		t.Errorf("another job's credential: %v", err)
	}
}
