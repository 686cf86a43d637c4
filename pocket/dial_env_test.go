package pocket_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/pocket"
)

// TestDialInsecureFromTheEnvironment: $POCKET_INSECURE that is no word of
// strconv.ParseBool, or set beside $POCKET_TLS_DIR, fails Dial naming it;
// set to 1 it stands for Config.Insecure, so a TLS directory that would
// fail to load is not read; Config.TLS given explicitly wins over it.
func TestDialInsecureFromTheEnvironment(t *testing.T) {
	ctx := context.Background()
	t.Setenv("POCKET_INSECURE", "maybe")
	if _, err := pocket.Dial(ctx, "127.0.0.1:1", pocket.Config{}); err == nil || !strings.Contains(err.Error(), `$POCKET_INSECURE="maybe"`) {
		t.Fatalf("POCKET_INSECURE=maybe: %v", err)
	}
	t.Setenv("POCKET_INSECURE", "1")
	t.Setenv("POCKET_TLS_DIR", t.TempDir())
	if _, err := pocket.Dial(ctx, "127.0.0.1:1", pocket.Config{}); err == nil || !strings.Contains(err.Error(), "both set") {
		t.Fatalf("POCKET_INSECURE=1 beside POCKET_TLS_DIR: %v", err)
	}
	t.Setenv("POCKET_TLS_DIR", "")
	s, err := pocket.Dial(ctx, "127.0.0.1:1", pocket.Config{})
	if err != nil {
		t.Fatalf("POCKET_INSECURE=1: %v", err)
	}
	s.Close()
	t.Setenv("POCKET_INSECURE", "0")
	t.Setenv("POCKET_TLS_DIR", t.TempDir()) // no certificate in it
	if _, err := pocket.Dial(ctx, "127.0.0.1:1", pocket.Config{}); err == nil || !strings.Contains(err.Error(), "POCKET_TLS_DIR") {
		t.Fatalf("POCKET_INSECURE=0 with an empty POCKET_TLS_DIR: %v", err)
	}
}
