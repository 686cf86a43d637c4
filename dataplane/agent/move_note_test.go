package agent

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestUnfinishedMoveSaysWhatHappened: a new user's trial read, at a
// deregistration, `WARN msg="move: job not fully moved yet" left=0
// err="migrate ... : wire: token revoked: the job was deregistered during
// the put"`, which contradicts itself. A move stopped by the job's end is
// said as such, at info level; nothing left is no warning either; values
// left still warn.
func TestUnfinishedMoveSaysWhatHappened(t *testing.T) {
	revoked := fmt.Errorf("migrate %q to 127.0.0.1:25112: %w", "k", &wire.Error{Code: wire.CodeRevoked, Msg: "the job was deregistered during the put: nothing was stored"})
	for _, c := range []struct {
		left      int64
		err       error
		level     string
		want, not string
	}{
		{0, revoked, "level=INFO", "the job ended during its move", "not fully moved"},
		{12, revoked, "level=INFO", "the job ended during its move", "not fully moved"},
		{0, errors.New("migrate: connection reset"), "level=INFO", "nothing of the job is left to move", "not fully moved"},
		{12, errors.New("migrate: connection reset"), "level=WARN", "job not fully moved yet", "ended"},
	} {
		var buf bytes.Buffer
		noteUnfinished(slog.New(slog.NewTextHandler(&buf, nil)), &repeats{}, "move", "j-1", 2, c.left, c.err)
		line := buf.String()
		if !strings.Contains(line, c.level) || !strings.Contains(line, c.want) || strings.Contains(line, c.not) {
			t.Errorf("left %d, err %v: logged %q; want %s saying %q", c.left, c.err, line, c.level, c.want)
		}
	}
}

// TestUnfinishedMoveWarnsOncePerInterval: a move retried every moveRetry
// that cannot finish warns for its job once, then once a repeatEvery
// saying how many it held back; another job's warning is its own. Before,
// every retry warned (a hostile trial: 418 warnings in 110 s).
func TestUnfinishedMoveWarnsOncePerInterval(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	notes := &repeats{}
	full := errors.New("migrate: no space")
	for range 10 { // 5 s of retries
		noteUnfinished(log, notes, "move", "j-1", 2, 7, full)
	}
	noteUnfinished(log, notes, "move", "j-2", 2, 7, full)
	if n := strings.Count(buf.String(), "job not fully moved yet"); n != 2 {
		t.Fatalf("%d warnings for 10 retries of one job and 1 of another, want 2:\n%s", n, buf.String())
	}
	buf.Reset()
	e := notes.seen["move/j-1"]
	e.at = e.at.Add(-repeatEvery)
	notes.seen["move/j-1"] = e
	noteUnfinished(log, notes, "move", "j-1", 2, 7, full)
	if !strings.Contains(buf.String(), "repeated=9") {
		t.Fatalf("the warning after repeatEvery does not count the 9 held back: %q", buf.String())
	}
}
