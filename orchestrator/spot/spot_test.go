package spot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return t0 }

// metadata is a fake metadata service on loopback. After noticeAfter GETs
// of the notice path it answers with the notice; before, with "none". Its
// first failFirst GETs answer 500.
type metadata struct {
	noticeAfter int32
	failFirst   int32
	imdsV1      bool // refuse IMDSv2 tokens

	gets, puts atomic.Int32
	mu         sync.Mutex
	problems   []string
}

func (m *metadata) problem(format string, args ...any) {
	m.mu.Lock()
	m.problems = append(m.problems, fmt.Sprintf(format, args...))
	m.mu.Unlock()
}

func (m *metadata) serve(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(m.handle))
	t.Cleanup(func() {
		srv.Close()
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, p := range m.problems {
			t.Error(p)
		}
	})
	return srv.URL
}

func (m *metadata) handle(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
		m.puts.Add(1)
		if m.imdsV1 {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		if r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") == "" {
			m.problem("token request without a TTL")
		}
		fmt.Fprint(w, "tok-1")
	case r.Method == http.MethodGet && r.URL.Path == "/latest/meta-data/spot/instance-action":
		if tok := r.Header.Get("X-aws-ec2-metadata-token"); !m.imdsV1 && tok != "tok-1" {
			m.problem("instance-action asked with token %q", tok)
		}
		m.answer(w, http.StatusNotFound, "", `{"action":"terminate","time":"`+t0.Add(2*time.Minute).Format(time.RFC3339)+`"}`)
	case r.Method == http.MethodGet && r.URL.Path == "/computeMetadata/v1/instance/preempted":
		if r.Header.Get("Metadata-Flavor") != "Google" {
			m.problem("preempted asked without Metadata-Flavor")
			w.WriteHeader(http.StatusForbidden)
			return
		}
		m.answer(w, http.StatusOK, "FALSE", "TRUE")
	default:
		m.problem("unexpected %s %s", r.Method, r.URL.Path)
		w.WriteHeader(http.StatusNotFound)
	}
}

func (m *metadata) answer(w http.ResponseWriter, noneStatus int, none, notice string) {
	n := m.gets.Add(1)
	switch {
	case n <= m.failFirst:
		w.WriteHeader(http.StatusInternalServerError)
	case n > m.noticeAfter:
		fmt.Fprint(w, notice)
	default:
		w.WriteHeader(noneStatus)
		fmt.Fprint(w, none)
	}
}

func wait(t *testing.T, w *Watcher) Notice {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := w.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAWSNoticeIMDSv2(t *testing.T) {
	m := &metadata{noticeAfter: 3}
	w := &Watcher{Provider: AWS, BaseURL: m.serve(t), Interval: time.Millisecond, Now: fixedNow}
	n := wait(t, w)
	want := Notice{Provider: AWS, Action: "terminate", Time: t0.Add(2 * time.Minute)}
	if n != want {
		t.Fatalf("notice %+v, want %+v", n, want)
	}
	if g, p := m.gets.Load(), m.puts.Load(); g != 4 || p != 1 {
		t.Fatalf("%d polls and %d token requests, want 4 and 1 (the token is reused)", g, p)
	}
}

func TestAWSNoticeIMDSv1(t *testing.T) {
	m := &metadata{noticeAfter: 1, imdsV1: true}
	n := wait(t, &Watcher{Provider: AWS, BaseURL: m.serve(t), Interval: time.Millisecond, Now: fixedNow})
	if n.Action != "terminate" || m.gets.Load() != 2 {
		t.Fatalf("notice %+v after %d polls, want terminate after 2", n, m.gets.Load())
	}
}

func TestGCENotice(t *testing.T) {
	m := &metadata{noticeAfter: 2}
	n := wait(t, &Watcher{Provider: GCE, BaseURL: m.serve(t), Interval: time.Millisecond, Now: fixedNow})
	want := Notice{Provider: GCE, Action: "preempted", Time: t0.Add(GCENotice)}
	if n != want || m.gets.Load() != 3 {
		t.Fatalf("notice %+v after %d polls, want %+v after 3", n, m.gets.Load(), want)
	}
}

// Failed polls are retried, and logged once per run of failures.
func TestWaitRetriesFailedPolls(t *testing.T) {
	m := &metadata{noticeAfter: 4, failFirst: 3}
	var logs bytes.Buffer
	w := &Watcher{Provider: GCE, BaseURL: m.serve(t), Interval: time.Millisecond, Now: fixedNow,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	if n := wait(t, w); n.Action != "preempted" {
		t.Fatalf("notice %+v", n)
	}
	if lines := strings.Count(logs.String(), "\n"); lines != 1 || !strings.Contains(logs.String(), "HTTP 500") {
		t.Fatalf("log %q: want one line naming HTTP 500", logs.String())
	}
}

func TestWaitEndsWithContext(t *testing.T) {
	m := &metadata{noticeAfter: 1 << 30}
	w := &Watcher{Provider: AWS, BaseURL: m.serve(t), Interval: time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := w.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait = %v, want the context's deadline", err)
	}
	if m.gets.Load() == 0 {
		t.Fatal("never polled")
	}
}

func TestUnknownProvider(t *testing.T) {
	if _, err := (&Watcher{Provider: "azure"}).Wait(context.Background()); !errors.Is(err, ErrProvider) {
		t.Fatalf("Wait = %v, want ErrProvider", err)
	}
}

func TestDeadline(t *testing.T) {
	for _, tc := range []struct {
		at   time.Time
		want time.Duration
	}{
		{time.Time{}, 2 * time.Minute},               // no time said: the limit
		{t0.Add(10 * time.Minute), 2 * time.Minute},  // far off: the limit
		{t0.Add(2 * time.Minute), 110 * time.Second}, // AWS: two minutes less the margin
		{t0.Add(GCENotice), 20 * time.Second},        // GCE: 30 s less the margin
		{t0.Add(5 * time.Second), time.Second},       // within the margin: still try
		{t0.Add(-time.Minute), time.Second},          // past
	} {
		if got := (Notice{Time: tc.at}).Deadline(t0, 2*time.Minute, 10*time.Second); got != tc.want {
			t.Errorf("deadline for a host ending at %v: %v, want %v", tc.at, got, tc.want)
		}
	}
}

func TestRunDrainsEveryTarget(t *testing.T) {
	m := &metadata{noticeAfter: 1}
	w := &Watcher{Provider: AWS, BaseURL: m.serve(t), Interval: time.Millisecond, Now: fixedNow}
	var mu sync.Mutex
	var drained []string
	p := Plan{
		Targets: func(context.Context) ([]string, error) { return []string{"10.0.0.1:7100", "10.0.0.2:7100"}, nil },
		Drain: func(_ context.Context, addr string, d time.Duration) error {
			mu.Lock()
			defer mu.Unlock()
			drained = append(drained, fmt.Sprintf("%s %v", addr, d))
			if addr == "10.0.0.2:7100" {
				return errors.New("controller unreachable")
			}
			return nil
		},
		Logger: slog.New(slog.DiscardHandler),
	}
	n, err := Run(context.Background(), w, p)
	if n.Action != "terminate" || err == nil || !strings.Contains(err.Error(), "drain 10.0.0.2:7100: controller unreachable") {
		t.Fatalf("Run = %+v, %v: want the notice and the failed drain named", n, err)
	}
	slices.Sort(drained)
	if want := []string{"10.0.0.1:7100 1m50s", "10.0.0.2:7100 1m50s"}; !slices.Equal(drained, want) {
		t.Fatalf("drained %v, want %v", drained, want)
	}
}

func TestRunTargetsError(t *testing.T) {
	m := &metadata{noticeAfter: 0}
	w := &Watcher{Provider: GCE, BaseURL: m.serve(t), Interval: time.Millisecond, Now: fixedNow}
	p := Plan{
		Targets: func(context.Context) ([]string, error) { return nil, errors.New("forbidden") },
		Drain:   func(context.Context, string, time.Duration) error { t.Error("drained without targets"); return nil },
		Logger:  slog.New(slog.DiscardHandler),
	}
	if _, err := Run(context.Background(), w, p); err == nil || !strings.Contains(err.Error(), "nodes to drain: forbidden") {
		t.Fatalf("Run = %v", err)
	}
}
