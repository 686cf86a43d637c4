package logf

import (
	"fmt"
	"testing"
)

func TestLogger(t *testing.T) {
	var got []string
	l := Logger(func(format string, args ...any) { got = append(got, fmt.Sprintf(format, args...)) })
	l.Info("node retired", "node", "n1", "why", "drained")
	want := `level=INFO msg="node retired" node=n1 why=drained`
	if len(got) != 1 || got[0] != want {
		t.Fatalf("got %q, want [%q]", got, want)
	}
}
