package pocket

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/internal/redact/redacttest"
)

// TestPrintingHidesTheToken: a job's map and the job print their token
// redacted for every fmt verb and in log/slog (fmt.Println(job.Map())
// printed the token's bytes), and still print the job's id, tier, epoch
// and nodes.
func TestPrintingHidesTheToken(t *testing.T) {
	tok := []byte("tok-SECRET-0123456789abcdef")
	m := Map{Job: "sort-3", Token: tok, Tier: TierDRAM, Epoch: 7,
		Nodes: []Node{{Addr: "127.0.0.1:7100", Weight: 1}}, Dead: map[string]bool{"127.0.0.1:7100": true}}
	s := &Store{}
	j, err := s.newJob(m)
	if err != nil {
		t.Fatal(err)
	}
	redacttest.Check(t, "Map", m, tok)
	redacttest.Check(t, "*Map", &m, tok)
	redacttest.Check(t, "*Job", j, tok)
	redacttest.CheckFmt(t, "[]Map", []Map{m}, tok)
	for _, want := range []string{"sort-3", "dram", "7", "127.0.0.1:7100", "[redacted 27 bytes]"} {
		if got := fmt.Sprintf("%+v", m); !strings.Contains(got, want) {
			t.Errorf("%%+v of the map = %s, want it to show %q", got, want)
		}
		if got := j.String(); !strings.Contains(got, want) {
			t.Errorf("job.String() = %s, want it to show %q", got, want)
		}
	}
	if got := fmt.Sprintf("%#v", m); !strings.HasPrefix(got, "pocket.Map{Job:\"sort-3\"") {
		t.Errorf("%%#v of the map = %s, want pocket.Map{Job:\"sort-3\", ...}", got)
	}
	if !strings.Contains(fmt.Sprint(Map{Job: "static"}), "Token:[none]") && !strings.Contains(fmt.Sprint(Map{Job: "static"}), "[none]") {
		t.Errorf("a map without a token prints %s, want [none] for it", fmt.Sprint(Map{Job: "static"}))
	}
	if string(j.Token()) != string(tok) {
		t.Errorf("Token() = %q, want the token itself", j.Token())
	}
}

// TestStoreAndHandlePrintNoToken: a Store and a compat Handle holding a
// job print no token with any fmt verb (a Handle's map of jobs printed the
// job's map raw for verbs such as %s).
func TestStoreAndHandlePrintNoToken(t *testing.T) {
	tok := []byte("tok-SECRET-0123456789abcdef")
	s := NewStore(nil, Config{})
	defer s.Close()
	j, err := s.newJob(Map{Job: "sort-3", Token: tok, Nodes: []Node{{Addr: "127.0.0.1:7100", Weight: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	h := &Handle{s: s, jobs: map[string]*Job{"sort-3": j}}
	redacttest.CheckFmt(t, "*Store", s, tok)
	redacttest.CheckFmt(t, "*Handle", h, tok)
	if got := fmt.Sprint(h); !strings.Contains(got, "sort-3") {
		t.Errorf("the handle prints %s, want its job's id", got)
	}
}
