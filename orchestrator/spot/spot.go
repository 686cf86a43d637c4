// Package spot turns a spot or preemptible host's termination notice into
// drains of the storage nodes on that host, so their data moves to other
// nodes before the host goes.
//
// A Watcher polls the cloud's instance metadata service:
//
//   - AWS (EC2 spot): GET /latest/meta-data/spot/instance-action answers
//     404 until the instance is to be stopped or terminated, then 200 with
//     {"action": "terminate"|"stop"|"hibernate", "time": RFC 3339}, about
//     two minutes ahead. IMDSv2 is used (a token from PUT
//     /latest/api/token), falling back to IMDSv1 where the token call is
//     refused.
//   - GCE (spot and preemptible VMs): GET
//     /computeMetadata/v1/instance/preempted with "Metadata-Flavor: Google"
//     answers FALSE, then TRUE when the VM is preempted; the VM stops 30 s
//     later.
//
// Run waits for the notice and drains every target node with a deadline
// that ends before the host does (Notice.Deadline). `pocket spot` is the
// command; deploy/kubernetes runs it as a DaemonSet.
package spot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Provider names a cloud's metadata service.
type Provider string

// Providers.
const (
	AWS Provider = "aws"
	GCE Provider = "gce"
)

// Metadata service base URLs.
const (
	AWSMetadata = "http://169.254.169.254"
	GCEMetadata = "http://metadata.google.internal"
)

// GCENotice is how long a GCE VM runs after its preemption notice.
const GCENotice = 30 * time.Second

// Notice is a termination notice.
type Notice struct {
	Provider Provider
	Action   string    // AWS: terminate, stop or hibernate; GCE: preempted
	Time     time.Time // when the host goes (zero: not said)
}

// Deadline is the drain deadline for a notice received at now: the time
// left before the host goes, less margin (for the node to leave and its
// map to change), and at most limit. A notice whose time has passed, or
// lies within margin, gets one second: a drain that starts still moves
// what it can.
func (n Notice) Deadline(now time.Time, limit, margin time.Duration) time.Duration {
	if n.Time.IsZero() {
		return limit
	}
	d := n.Time.Sub(now) - margin
	switch {
	case d > limit:
		return limit
	case d < time.Second:
		return time.Second
	}
	return d
}

// Watcher polls one provider's metadata service for a termination notice.
// It is not safe for concurrent use (it keeps AWS's session token).
type Watcher struct {
	Provider Provider
	// BaseURL of the metadata service (default AWSMetadata or GCEMetadata;
	// a test's server).
	BaseURL string
	// Interval between polls (default 5 s; AWS advises every 5 s).
	Interval time.Duration
	// Client makes the requests (default: one with a 2 s timeout).
	Client *http.Client
	// Logger gets a line per failed poll that follows a good one, so an
	// unreachable metadata service shows without flooding (default
	// slog.Default()).
	Logger *slog.Logger
	// Now is the clock (time.Now).
	Now func() time.Time

	token   string
	tokenAt time.Time
}

// ErrProvider: the Watcher names no provider it knows.
var ErrProvider = errors.New("spot: unknown provider (want aws or gce)")

func (w *Watcher) defaults() error {
	switch w.Provider {
	case AWS, GCE:
	default:
		return fmt.Errorf("%w: %q", ErrProvider, w.Provider)
	}
	if w.BaseURL == "" {
		w.BaseURL = map[Provider]string{AWS: AWSMetadata, GCE: GCEMetadata}[w.Provider]
	}
	w.BaseURL = strings.TrimRight(w.BaseURL, "/")
	if w.Interval <= 0 {
		w.Interval = 5 * time.Second
	}
	if w.Client == nil {
		w.Client = &http.Client{Timeout: 2 * time.Second}
	}
	if w.Logger == nil {
		w.Logger = slog.Default()
	}
	if w.Now == nil {
		w.Now = time.Now
	}
	return nil
}

// Wait polls until a notice arrives and returns it, or returns ctx's
// error. Failed polls are logged and retried: a host whose metadata
// service is briefly unreachable must still see its notice.
func (w *Watcher) Wait(ctx context.Context) (Notice, error) {
	if err := w.defaults(); err != nil {
		return Notice{}, err
	}
	failing := false
	for {
		n, ok, err := w.Check(ctx)
		switch {
		case ok:
			return n, nil
		case err != nil && !failing && ctx.Err() == nil:
			w.Logger.Warn("spot: metadata poll failed; retrying", "provider", w.Provider, "err", err)
		}
		failing = err != nil
		select {
		case <-ctx.Done():
			return Notice{}, ctx.Err()
		case <-time.After(w.Interval):
		}
	}
}

// Check polls once: ok reports a notice.
func (w *Watcher) Check(ctx context.Context) (n Notice, ok bool, err error) {
	if err := w.defaults(); err != nil {
		return Notice{}, false, err
	}
	if w.Provider == GCE {
		return w.checkGCE(ctx)
	}
	return w.checkAWS(ctx)
}

func (w *Watcher) checkGCE(ctx context.Context) (Notice, bool, error) {
	body, status, err := w.get(ctx, "/computeMetadata/v1/instance/preempted", map[string]string{"Metadata-Flavor": "Google"})
	if err != nil {
		return Notice{}, false, err
	}
	if status != http.StatusOK {
		return Notice{}, false, fmt.Errorf("spot: gce preempted: HTTP %d", status)
	}
	switch strings.TrimSpace(body) {
	case "TRUE":
		return Notice{Provider: GCE, Action: "preempted", Time: w.Now().Add(GCENotice)}, true, nil
	case "FALSE":
		return Notice{}, false, nil
	}
	return Notice{}, false, fmt.Errorf("spot: gce preempted: unexpected answer %q", body)
}

func (w *Watcher) checkAWS(ctx context.Context) (Notice, bool, error) {
	hdr := map[string]string{}
	if tok := w.awsToken(ctx); tok != "" {
		hdr["X-aws-ec2-metadata-token"] = tok
	}
	body, status, err := w.get(ctx, "/latest/meta-data/spot/instance-action", hdr)
	switch {
	case err != nil:
		return Notice{}, false, err
	case status == http.StatusNotFound:
		return Notice{}, false, nil
	case status == http.StatusUnauthorized:
		w.token = "" // expired: a new one next time
		return Notice{}, false, errors.New("spot: aws instance-action: token refused (HTTP 401)")
	case status != http.StatusOK:
		return Notice{}, false, fmt.Errorf("spot: aws instance-action: HTTP %d", status)
	}
	var a struct{ Action, Time string }
	if err := json.Unmarshal([]byte(body), &a); err != nil || a.Action == "" {
		return Notice{}, false, fmt.Errorf("spot: aws instance-action: unexpected answer %q", body)
	}
	n := Notice{Provider: AWS, Action: a.Action}
	if t, err := time.Parse(time.RFC3339, a.Time); err == nil {
		n.Time = t
	}
	return n, true, nil
}

// awsTokenTTL is the lifetime asked of an IMDSv2 token; it is renewed
// after half of it.
const awsTokenTTL = 6 * time.Hour

// awsToken returns an IMDSv2 session token, or "" where the service does
// not give one (IMDSv1 only).
func (w *Watcher) awsToken(ctx context.Context) string {
	if w.token != "" && w.Now().Sub(w.tokenAt) < awsTokenTTL/2 {
		return w.token
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, w.BaseURL+"/latest/api/token", nil)
	if err != nil {
		return ""
	}
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", fmt.Sprint(int(awsTokenTTL.Seconds())))
	resp, err := w.Client.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil || resp.StatusCode != http.StatusOK {
		return ""
	}
	w.token, w.tokenAt = strings.TrimSpace(string(b)), w.Now()
	return w.token
}

// get fetches path, reading at most 64 KiB of the answer.
func (w *Watcher) get(ctx context.Context, path string, hdr map[string]string) (string, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.BaseURL+path, nil)
	if err != nil {
		return "", 0, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := w.Client.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("spot: %s metadata: %w", w.Provider, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", 0, fmt.Errorf("spot: %s metadata: %w", w.Provider, err)
	}
	return string(b), resp.StatusCode, nil
}

// Plan is what Run does on a notice.
type Plan struct {
	// Targets lists the data-plane addresses of the nodes to drain, read
	// when the notice arrives (nodes come and go before it).
	Targets func(ctx context.Context) ([]string, error)
	// Drain drains one node with a deadline (`pocket node drain ADDR
	// --deadline D`).
	Drain func(ctx context.Context, addr string, deadline time.Duration) error
	// Limit caps the deadline (default 2 min, AWS's notice); Margin is
	// kept between the drain's deadline and the host's end (default 10 s).
	Limit, Margin time.Duration
	Logger        *slog.Logger // default slog.Default()
}

// Run waits for w's notice, then drains every target at once. It returns
// the notice and the drains' errors joined (when Targets fails, the
// targets it returned are drained and its error joined too), or ctx's
// error if no notice came.
func Run(ctx context.Context, w *Watcher, p Plan) (Notice, error) {
	if p.Limit <= 0 {
		p.Limit = 2 * time.Minute
	}
	if p.Margin <= 0 {
		p.Margin = 10 * time.Second
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	n, err := w.Wait(ctx)
	if err != nil {
		return Notice{}, err
	}
	deadline := n.Deadline(w.Now(), p.Limit, p.Margin)
	addrs, err := p.Targets(ctx)
	if err != nil {
		// Drain those it did find: the host goes either way.
		err = fmt.Errorf("spot: nodes to drain: %w", err)
	}
	p.Logger.Warn("spot: termination notice; draining", "provider", n.Provider, "action", n.Action,
		"at", n.Time, "deadline", deadline, "nodes", addrs)
	errs := make([]error, len(addrs), len(addrs)+1)
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Drain(ctx, a, deadline); err != nil {
				errs[i] = fmt.Errorf("spot: drain %s: %w", a, err)
			}
		}()
	}
	wg.Wait()
	return n, errors.Join(append(errs, err)...)
}
