package main

import (
	"testing"

	"github.com/pocketstore/pocket/controller"
)

// TestCredentialWaitOutlastsTheEndedMapWait: a data command opening
// POCKET_CREDENTIAL waits for the controller longer than a controller
// with the default heartbeat settings (those of pocket up and pocket
// controller) holds back a just-ended job's final map. At 2 s against the
// controller's 3 s, a new user's `pocket ls` right after a deregistration
// gave up on a healthy controller, with "context deadline exceeded".
func TestCredentialWaitOutlastsTheEndedMapWait(t *testing.T) {
	ctl, err := controller.New(controller.Config{Secret: hintSecret})
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	if w := ctl.EndedMapWait(); credentialCtlWait <= w {
		t.Fatalf("the CLI waits %v for the controller's answer to a credential; the controller may take %v to answer a just-ended job's", credentialCtlWait, w)
	}
}
