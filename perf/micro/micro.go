package micro

import (
	"context"
	"errors"
	"fmt"
	"github.com/pocketstore/pocket/wire"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pocketstore/pocket/perf/workload"
	"github.com/pocketstore/pocket/pocket"
)

// Store is one store to measure.
type Store struct {
	Name   string // "pocket-dram", "pocket-nvme", "redis"
	Target workload.Target
}

// Config is one run of the suite.
type Config struct {
	Stores     []Store
	Samples    int           // sequential requests per latency cell; default 2000
	ValueSize  int           // default 1 KiB
	MaxClients int           // throughput from 1 to this many clients; default 8
	Duration   time.Duration // per throughput or IOPS cell; default 1s
	Inflight   int           // requests in flight for IOPS; default 64
	Notes      []string      // printed under the tables (e.g. a skipped tier)
}

func (c *Config) defaults() {
	if c.Samples <= 0 {
		c.Samples = 2000
	}
	if c.ValueSize <= 0 {
		c.ValueSize = 1 << 10
	}
	if c.MaxClients <= 0 {
		c.MaxClients = 8
	}
	if c.Duration <= 0 {
		c.Duration = time.Second
	}
	if c.Inflight <= 0 {
		c.Inflight = 64
	}
}

// Latency is one store's unloaded latency of one operation.
type Latency struct {
	Store  string  `json:"store"`
	Op     string  `json:"op"` // put, get, lookup
	P50us  float64 `json:"p50_us"`
	P99us  float64 `json:"p99_us"`
	MeanUs float64 `json:"mean_us"`
}

// Throughput is one store's rate with some clients or requests in flight.
type Throughput struct {
	Store     string  `json:"store"`
	Op        string  `json:"op"`
	Clients   int     `json:"clients"`
	Inflight  int     `json:"inflight"`
	OpsPerSec float64 `json:"ops_per_sec"`
	Errors    int64   `json:"errors"`
	// FirstError is the first failed request's error, when any failed.
	FirstError string `json:"first_error,omitempty"`
}

// Report is one run of the suite.
type Report struct {
	Started    time.Time    `json:"started"`
	Machine    string       `json:"machine"`
	GoVersion  string       `json:"go_version"`
	ValueSize  int          `json:"value_size"`
	Samples    int          `json:"samples"`
	Duration   float64      `json:"duration_seconds"`
	Latency    []Latency    `json:"latency"`
	Throughput []Throughput `json:"throughput"` // 1..N clients, one request each
	IOPS       []Throughput `json:"iops"`       // many requests in flight
	Notes      []string     `json:"notes,omitempty"`
}

// Run runs the suite over every store.
func Run(ctx context.Context, c Config) (*Report, error) {
	c.defaults()
	r := &Report{Started: time.Now().UTC(), Machine: Machine(), GoVersion: runtime.Version(),
		ValueSize: c.ValueSize, Samples: c.Samples, Duration: c.Duration.Seconds(), Notes: c.Notes}
	for _, s := range c.Stores {
		if err := runStore(ctx, c, s, r); err != nil {
			return r, fmt.Errorf("micro: %s: %w", s.Name, err)
		}
	}
	return r, nil
}

func runStore(ctx context.Context, c Config, s Store, r *Report) error {
	if s.Target.Controller != "" && s.Target.Job == "" {
		h := pocket.Hints{Lambdas: c.Inflight, LatencySensitive: s.Target.Tier != wire.TierNVMe}
		t, release, err := workload.RegisterJob(ctx, s.Target, "micro", h)
		if err != nil {
			return err
		}
		defer release(context.WithoutCancel(ctx))
		s.Target = t
	}
	lat, err := latencies(ctx, c, s)
	if err != nil {
		return err
	}
	r.Latency = append(r.Latency, lat...)
	for n := 1; n <= c.MaxClients; n *= 2 {
		t, err := rate(ctx, c, s, "get", n, 1)
		if err != nil {
			return err
		}
		r.Throughput = append(r.Throughput, t)
	}
	for _, op := range []string{"get", "put"} {
		clients := max(1, c.Inflight/4)
		t, err := rate(ctx, c, s, op, clients, c.Inflight/clients)
		if err != nil {
			return err
		}
		r.IOPS = append(r.IOPS, t)
	}
	return nil
}

// latencies times Samples sequential puts, gets and lookups of one key.
func latencies(ctx context.Context, c Config, s Store) ([]Latency, error) {
	be, err := workload.Open(ctx, s.Target)
	if err != nil {
		return nil, err
	}
	defer be.Close()
	val := make([]byte, c.ValueSize)
	dst := make([]byte, c.ValueSize)
	k := "micro/lat-" + strconv.Itoa(os.Getpid())
	defer be.Delete(context.WithoutCancel(ctx), k)
	ops := []struct {
		name string
		do   func() error
	}{
		{"put", func() error { return be.Put(ctx, k, val) }},
		{"get", func() error { _, err := be.Get(ctx, k, dst); return err }},
		{"lookup", func() error {
			ok, err := be.Exists(ctx, k)
			if err == nil && !ok {
				err = errors.New("lookup of a stored key says it is missing")
			}
			return err
		}},
	}
	var out []Latency
	for _, op := range ops {
		d := make([]time.Duration, 0, c.Samples)
		for i := range c.Samples + c.Samples/10 { // the first tenth warms up
			start := time.Now()
			if err := op.do(); err != nil {
				return nil, fmt.Errorf("%s: %w", op.name, err)
			}
			if i >= c.Samples/10 {
				d = append(d, time.Since(start))
			}
		}
		out = append(out, summarize(s.Name, op.name, d))
	}
	return out, nil
}

func summarize(store, op string, d []time.Duration) Latency {
	slices.Sort(d)
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	us := func(x time.Duration) float64 { return float64(x) / float64(time.Microsecond) }
	return Latency{Store: store, Op: op, P50us: us(d[len(d)/2]), P99us: us(d[len(d)*99/100]), MeanUs: us(sum) / float64(len(d))}
}

// rate runs clients clients (each with its own connections), each with
// per requests in flight, for Duration, and counts completed requests.
func rate(ctx context.Context, c Config, s Store, op string, clients, per int) (Throughput, error) {
	bes := make([]workload.Backend, clients)
	defer func() {
		for _, be := range bes {
			if be != nil {
				be.Close()
			}
		}
	}()
	val := make([]byte, c.ValueSize)
	for i := range bes {
		be, err := workload.Open(ctx, s.Target)
		if err != nil {
			return Throughput{}, err
		}
		bes[i] = be
		// Each requester has its own key, preloaded for gets.
		for j := range per {
			if err := be.Put(ctx, rateKey(i, j), val); err != nil {
				return Throughput{}, err
			}
		}
	}
	var done, errs atomic.Int64
	var first atomic.Value
	deadline := time.Now().Add(c.Duration)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	var wg sync.WaitGroup
	for i, be := range bes {
		for j := range per {
			wg.Add(1)
			go func() {
				defer wg.Done()
				k, dst := rateKey(i, j), make([]byte, c.ValueSize)
				for ctx.Err() == nil {
					var err error
					if op == "get" {
						_, err = be.Get(ctx, k, dst)
					} else {
						err = be.Put(ctx, k, val)
					}
					if err != nil {
						if time.Now().Before(deadline) { // not the run's end cutting a request short
							errs.Add(1)
							first.CompareAndSwap(nil, err.Error())
						}
						continue
					}
					done.Add(1)
				}
			}()
		}
	}
	start := time.Now()
	wg.Wait()
	secs := time.Since(start).Seconds()
	cleanupKeys(bes, per)
	fe, _ := first.Load().(string)
	return Throughput{Store: s.Name, Op: op, Clients: clients, Inflight: clients * per,
		OpsPerSec: float64(done.Load()) / secs, Errors: errs.Load(), FirstError: fe}, nil
}

func rateKey(client, req int) string {
	return "micro/rate-" + strconv.Itoa(os.Getpid()) + "-" + strconv.Itoa(client) + "-" + strconv.Itoa(req)
}

func cleanupKeys(bes []workload.Backend, per int) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, be := range bes {
		for j := range per {
			_ = be.Delete(ctx, rateKey(i, j))
		}
	}
}

// Machine describes this machine in one line: kernel, cores, CPU model.
func Machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%s, %d cores, %s (host %s)", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cpu, host)
}
