package metaclient_test

import (
	"testing"

	"github.com/pocketstore/pocket/internal/redact/redacttest"
	"github.com/pocketstore/pocket/metaclient"
)

// TestPrintingHidesTheSecret: Options, a Client and Controllers print the
// cluster secret redacted for every fmt verb and in log/slog (a Client
// printed with %+v showed Options.Secret's bytes).
func TestPrintingHidesTheSecret(t *testing.T) {
	secret := []byte("cluster-SECRET-0123456789")
	opt := metaclient.Options{Secret: secret}
	c := metaclient.New("127.0.0.1:1", opt)
	defer c.Close()
	cs, err := metaclient.NewControllers([]string{"127.0.0.1:1", "127.0.0.1:2"}, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	redacttest.Check(t, "Options", opt, secret)
	redacttest.CheckFmt(t, "*Client", c, secret)
	redacttest.CheckFmt(t, "*Controllers", cs, secret)
}
