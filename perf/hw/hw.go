package hw

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pocketstore/pocket/dataplane/slab"
	"github.com/pocketstore/pocket/nvme"
	"github.com/pocketstore/pocket/perf/bench"
)

// Config describes one measurement run. Zero fields take the defaults.
type Config struct {
	Path string // block device or file (created at Size when missing, and then removed at the end)
	Size int64  // bytes of the device to use

	// Duration of each device measurement (default 2s).
	Duration time.Duration
	// Engine for the device (default nvme.EngineAuto).
	Engine nvme.Engine
	// SeqBlock and SeqDepth shape the sequential runs (1 MiB, 16).
	SeqBlock, SeqDepth int
	// RandBlock and RandDepths shape the random runs (4 KiB; 1, 4, 16,
	// 32, 64).
	RandBlock  int
	RandDepths []int
	// DRAMBytes is the size of the arena copy (64 MiB).
	DRAMBytes int
	// SkipDevice, SkipDRAM and SkipNetwork leave a part out.
	SkipDevice, SkipDRAM, SkipNetwork bool
	// Progress, when set, gets a line before each measurement.
	Progress func(string)
}

func (c *Config) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.Duration <= 0 {
		c.Duration = 2 * time.Second
	}
	def(&c.SeqBlock, 1<<20)
	def(&c.SeqDepth, 16)
	def(&c.RandBlock, 4<<10)
	def(&c.DRAMBytes, 64<<20)
	if len(c.RandDepths) == 0 {
		c.RandDepths = []int{1, 4, 16, 32, 64}
	}
	if c.Progress == nil {
		c.Progress = func(string) {}
	}
}

// RandResult is one random-I/O measurement.
type RandResult struct {
	Depth int     `json:"qd"`
	IOPS  float64 `json:"iops"`
	P50us float64 `json:"p50_us"`
	P99us float64 `json:"p99_us"`
}

// Report is the outcome of Run; its JSON names are the profile format (see
// the package doc). Rates are in MB (10^6 bytes) and GB (10^9) per second.
type Report struct {
	Path   string `json:"path,omitempty"`
	Size   int64  `json:"size_bytes,omitempty"`
	Engine string `json:"engine,omitempty"`
	Align  int    `json:"align,omitempty"`

	SeqWriteMBps float64 `json:"seq_write_mb_per_sec"`
	SeqReadMBps  float64 `json:"seq_read_mb_per_sec"`
	// The 4 KiB random-read summaries are left out when their queue
	// depth was not measured (--depths without 32, or 1): a new user's
	// trial read "rand_read_4k_iops_qd32": 0 after --depths 1,8.
	RandRead4kIOPSQD32 float64      `json:"rand_read_4k_iops_qd32,omitempty"`
	RandRead4kP50usQD1 float64      `json:"rand_read_4k_p50_us_qd1,omitempty"`
	RandRead           []RandResult `json:"rand_read_4k,omitempty"`
	RandWrite          []RandResult `json:"rand_write_4k,omitempty"`
	DRAMCopyGBps       float64      `json:"dram_copy_gb_per_sec"`
	LoopbackMBps       float64      `json:"loopback_tcp_mb_per_sec"`
}

// Run performs the measurements the config asks for.
func Run(ctx context.Context, cfg Config) (Report, error) {
	cfg.defaults()
	var r Report
	if !cfg.SkipDevice {
		if err := measureDevice(ctx, cfg, &r); err != nil {
			return r, err
		}
	}
	if !cfg.SkipDRAM {
		cfg.Progress("dram: arena copy")
		gbps, err := DRAMCopy(cfg.DRAMBytes, cfg.Duration/4)
		if err != nil {
			return r, err
		}
		r.DRAMCopyGBps = gbps
	}
	if !cfg.SkipNetwork {
		cfg.Progress("network: loopback TCP stream")
		st, err := bench.Loopback(ctx, cfg.Duration/2, cfg.Duration/10, 1<<20)
		if err != nil {
			return r, err
		}
		r.LoopbackMBps = st.MBPerSec()
	}
	return r, ctx.Err()
}

func measureDevice(ctx context.Context, cfg Config, r *Report) error {
	if cfg.Path == "" {
		return errors.New("hw: no device path")
	}
	if _, err := os.Stat(cfg.Path); errors.Is(err, fs.ErrNotExist) {
		// A file the measurement creates goes with it (a new user's
		// trial found its --size of test data left behind).
		defer os.Remove(cfg.Path)
	}
	dev, err := nvme.Open(cfg.Path, nvme.Options{
		Size:       cfg.Size,
		Engine:     cfg.Engine,
		QueueDepth: max(cfg.SeqDepth, slicesMax(cfg.RandDepths)),
		BufferPool: int64(cfg.SeqDepth*cfg.SeqBlock + slicesMax(cfg.RandDepths)*cfg.RandBlock + 1<<20),
	})
	if err != nil {
		return err
	}
	defer dev.Close()
	r.Path, r.Size, r.Engine, r.Align = dev.Path(), dev.Size(), dev.Engine().String(), dev.Align()
	if cfg.SeqBlock%dev.Align() != 0 || cfg.RandBlock%dev.Align() != 0 || int64(cfg.SeqBlock) > dev.Size() {
		return fmt.Errorf("hw: blocks %d/%d do not suit device alignment %d and size %d", cfg.SeqBlock, cfg.RandBlock, dev.Align(), dev.Size())
	}
	cfg.Progress(fmt.Sprintf("device: %s, %d bytes, %s, alignment %d", dev.Path(), dev.Size(), dev.Engine(), dev.Align()))

	cfg.Progress("device: sequential write")
	w, err := Sequential(ctx, dev, true, cfg.SeqBlock, cfg.SeqDepth, dev.Size(), cfg.Duration)
	if err != nil {
		return err
	}
	r.SeqWriteMBps = w.MBps()
	// Reads stay inside what was written: reading holes (unwritten file
	// extents) costs the device nothing and would flatter it.
	written := min(dev.Size(), w.Bytes/int64(cfg.SeqBlock)*int64(cfg.SeqBlock))
	cfg.Progress("device: sequential read")
	rd, err := Sequential(ctx, dev, false, cfg.SeqBlock, cfg.SeqDepth, written, cfg.Duration)
	if err != nil {
		return err
	}
	r.SeqReadMBps = rd.MBps()
	for _, write := range []bool{false, true} {
		for _, qd := range cfg.RandDepths {
			cfg.Progress(fmt.Sprintf("device: random %s, %d B, QD%d", dirName(write), cfg.RandBlock, qd))
			s, err := Random(ctx, dev, write, cfg.RandBlock, qd, written, cfg.Duration)
			if err != nil {
				return err
			}
			rr := RandResult{Depth: qd, IOPS: s.IOPS(), P50us: us(s.Hist.Quantile(0.50)), P99us: us(s.Hist.Quantile(0.99))}
			if write {
				r.RandWrite = append(r.RandWrite, rr)
				continue
			}
			r.RandRead = append(r.RandRead, rr)
			switch qd {
			case 1:
				r.RandRead4kP50usQD1 = rr.P50us
			case 32:
				r.RandRead4kIOPSQD32 = rr.IOPS
			}
		}
	}
	return nil
}

func dirName(write bool) string {
	if write {
		return "write"
	}
	return "read"
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

func slicesMax(v []int) int {
	m := 0
	for _, x := range v {
		m = max(m, x)
	}
	return m
}

// Stats is the outcome of one device measurement.
type Stats struct {
	Ops      int64
	Bytes    int64
	Duration time.Duration
	Hist     bench.Histogram // per-transfer latency
}

// MBps is the rate in MB (10^6 bytes) per second.
func (s *Stats) MBps() float64 { return float64(s.Bytes) / 1e6 / s.Duration.Seconds() }

// IOPS is transfers per second.
func (s *Stats) IOPS() float64 { return float64(s.Ops) / s.Duration.Seconds() }

// Sequential moves block-sized transfers at ascending offsets of the first
// span bytes (wrapping around) with depth transfers in flight, for d.
func Sequential(ctx context.Context, dev *nvme.Device, write bool, block, depth int, span int64, d time.Duration) (*Stats, error) {
	blocks := span / int64(block)
	if blocks <= 0 {
		return nil, fmt.Errorf("hw: span %d below one %d-byte block", span, block)
	}
	var next atomic.Int64
	return drive(ctx, dev, write, block, depth, d, func(*rand.Rand) int64 {
		return (next.Add(1) - 1) % blocks * int64(block)
	})
}

// Random moves block-sized transfers at uniformly random aligned offsets
// of the first span bytes with depth transfers in flight, for d.
func Random(ctx context.Context, dev *nvme.Device, write bool, block, depth int, span int64, d time.Duration) (*Stats, error) {
	blocks := span / int64(block)
	if blocks <= 0 {
		return nil, fmt.Errorf("hw: span %d below one %d-byte block", span, block)
	}
	return drive(ctx, dev, write, block, depth, d, func(rng *rand.Rand) int64 {
		return rng.Int64N(blocks) * int64(block)
	})
}

// drive runs depth workers, each keeping one transfer in flight (and
// making at least one), until d has passed, and merges their counts and
// latency histograms.
func drive(ctx context.Context, dev *nvme.Device, write bool, block, depth int, d time.Duration, offset func(*rand.Rand) int64) (*Stats, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		mu    sync.Mutex
		total Stats
		first error
		wg    sync.WaitGroup
	)
	start := time.Now()
	for w := range depth {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := worker(ctx, dev, write, block, uint64(w), offset)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && first == nil {
				first = err
			}
			total.Ops += s.Ops
			total.Bytes += s.Bytes
			total.Hist.Merge(&s.Hist)
		}()
	}
	wg.Wait()
	total.Duration = time.Since(start)
	return &total, first
}

func worker(ctx context.Context, dev *nvme.Device, write bool, block int, seed uint64, offset func(*rand.Rand) int64) (*Stats, error) {
	var s Stats
	buf, err := dev.AllocBuffer(block)
	if err != nil {
		return &s, err
	}
	defer dev.FreeBuffer(buf)
	for i := range buf {
		buf[i] = byte(i*31) ^ byte(seed)
	}
	rng := rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano())))
	ios := make([]nvme.IO, 1)
	// At least one transfer, also when ctx ended before the worker ran:
	// on a loaded machine a 100 ms run once moved nothing, and the reads
	// after it, kept to what was written, had nothing to read.
	for first := true; first || ctx.Err() == nil; first = false {
		ios[0] = nvme.IO{Write: write, Buf: buf, Off: offset(rng)}
		t0 := time.Now()
		if err := dev.Do(ios); err != nil {
			return &s, err
		}
		s.Hist.Record(time.Since(t0))
		s.Ops++
		s.Bytes += int64(block)
	}
	return &s, nil
}

// DRAMCopy measures single-threaded copy bandwidth in GB (10^9 bytes) per
// second between two buffers of n bytes in a slab arena, the memory that
// holds the node's DRAM tier, copying for at least d. Buffers larger than an
// arena chunk are copied chunk by chunk, as the tier stores them.
func DRAMCopy(n int, d time.Duration) (float64, error) {
	arena, err := slab.New(int64(2*n)+4*slab.DefaultPageSize, slab.Options{})
	if err != nil {
		return 0, err
	}
	defer arena.Close()
	chunk := min(n, arena.MaxChunk())
	var src, dst [][]byte
	for left := n; left > 0; left -= chunk {
		a, err := arena.Alloc(min(chunk, left))
		if err != nil {
			return 0, err
		}
		b, err := arena.Alloc(min(chunk, left))
		if err != nil {
			return 0, err
		}
		for i := range a {
			a[i] = byte(i)
		}
		clear(b) // touch every page before timing
		src, dst = append(src, a), append(dst, b)
	}
	var copied int64
	start := time.Now()
	for time.Since(start) < d || copied == 0 {
		for i := range src {
			copied += int64(copy(dst[i], src[i]))
		}
	}
	return float64(copied) / 1e9 / time.Since(start).Seconds(), nil
}
