package main

import (
	"flag"
	"io"
	"os"
	"strings"
	"testing"
)

// TestK8sFlagsWithoutOrchestratorNoted: --k8s-* values given without
// --orchestrator kubernetes are checked and noted as unused; before, a new
// user's --k8s-image was taken without a word. With the orchestrator, or
// without such flags, nothing is said.
func TestK8sFlagsWithoutOrchestratorNoted(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--k8s-image", "foo"}, "note: --k8s-image takes effect only with --orchestrator kubernetes"},
		{[]string{"--k8s-image", "foo", "--k8s-cpu", "2"}, "note: --k8s-cpu, --k8s-image take effect only"},
		{nil, ""},
		{[]string{"--orchestrator", "kubernetes", "--k8s-image", "foo", "--k8s-controller", "c:7000"}, ""},
	} {
		fs := flag.NewFlagSet("controller", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var o orchFlags
		o.bind(fs)
		if err := fs.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		errOut, _ := captured(t, &os.Stderr, func() int {
			if err := o.check(true); err != nil {
				t.Errorf("%q: %v", c.args, err)
			}
			return 0
		})
		if c.want == "" && errOut != "" || !strings.Contains(errOut, c.want) {
			t.Errorf("%q: stderr %q; want %q", c.args, errOut, c.want)
		}
	}
}
