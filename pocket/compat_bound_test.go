package pocket

import (
	"fmt"
	"testing"
)

// TestCompatKeepsTheNewestCredentials: DeregisterJob keeps the credentials
// of the newest maxCompatCreds jobs it ended, not every one (a soak:
// about 450 bytes a job for the life of the process). A job ended again
// is not counted twice.
func TestCompatKeepsTheNewestCredentials(t *testing.T) {
	defer func(n int) { maxCompatCreds = n }(maxCompatCreds)
	maxCompatCreds = 3
	defer func() {
		credsMu.Lock()
		for _, id := range credsOrder {
			compatCreds.Delete(id)
		}
		credsOrder = nil
		credsMu.Unlock()
	}()
	for i := range 10 {
		keepCredential(fmt.Sprintf("bound-%d", i), fmt.Sprintf("cred-%d", i))
	}
	keepCredential("bound-9", "cred-9b")
	for i := range 10 {
		_, ok := compatCreds.Load(fmt.Sprintf("bound-%d", i))
		if want := i >= 7; ok != want {
			t.Errorf("bound-%d kept %v, want %v", i, ok, want)
		}
	}
	if c, _ := compatCreds.Load("bound-9"); c != "cred-9b" || len(credsOrder) != 3 {
		t.Errorf("bound-9's credential %v, %d kept; want the newer one, 3", c, len(credsOrder))
	}
}
