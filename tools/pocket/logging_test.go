package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestIdentityLogger(t *testing.T) {
	var buf bytes.Buffer
	f := logFlags{format: "text", level: "info"}
	h, err := f.handler(&buf)
	if err != nil {
		t.Fatal(err)
	}
	id := newIdentity(h, "node")
	job := id.log.With("job", "j-1")
	job.Info("before")
	id.set("127.0.0.1:7100")
	id.set("127.0.0.1:9999") // the first address stays
	job.Info("after")
	id.log.Debug("hidden")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("lines %q, want 2", lines)
	}
	if strings.Contains(lines[0], "node=") || !strings.Contains(lines[0], "job=j-1") {
		t.Errorf("before set: %q", lines[0])
	}
	if !strings.Contains(lines[1], "node=127.0.0.1:7100 job=j-1") {
		t.Errorf("after set: %q, want node=127.0.0.1:7100 first, then job=j-1", lines[1])
	}
}

func TestLogFlags(t *testing.T) {
	var buf bytes.Buffer
	f := logFlags{format: "json", level: "warn"}
	h, err := f.handler(&buf)
	if err != nil {
		t.Fatal(err)
	}
	l := slog.New(h)
	l.Info("no")
	l.Warn("yes", "job", "j")
	if got := buf.String(); !strings.HasPrefix(got, "{") || !strings.Contains(got, `"job":"j"`) || strings.Contains(got, `"no"`) {
		t.Errorf("json at warn: %q", got)
	}
	for _, bad := range []logFlags{{format: "xml"}, {level: "loud"}} {
		if _, err := bad.handler(&buf); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if got := strings.Join((&logFlags{}).args(), " "); got != "--log-format text --log-level info" {
		t.Errorf("default args %q", got)
	}
}

// TestBoundAs: a node names itself before it binds only when its --listen
// says the address it will have.
func TestBoundAs(t *testing.T) {
	for listen, want := range map[string]string{
		"127.0.0.1:7100": "127.0.0.1:7100", "[::1]:7100": "[::1]:7100",
		"127.0.0.1:0": "", "0.0.0.0:7100": "", ":7100": "", "localhost:7100": "", "bad": "",
	} {
		if got := boundAs(listen); got != want {
			t.Errorf("boundAs(%q) = %q, want %q", listen, got, want)
		}
	}
}
